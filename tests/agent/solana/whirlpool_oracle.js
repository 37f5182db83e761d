// Orca's published packages (pinned in package-lock.json) as the oracle for the agent's Whirlpool code: reads
// one JSON request on stdin, answers JSON on stdout. Offline. Layouts: @orca-so/whirlpools-client's codecs
// encode the accounts (fixed and dynamic tick arrays) and derive the tick-array PDAs; quotes:
// @orca-so/whirlpools-core (WASM) swapQuoteByInputToken, no oracle account, Token-2022 transfer fees when given.
const client = require('@orca-so/whirlpools-client');
const core = require('@orca-so/whirlpools-core');
const { address, createNoopSigner } = require('@solana/kit');

const hex = (bytes) => Buffer.from(bytes).toString('hex');
const tick = ([initialized, net, gross]) => ({
  initialized, liquidityNet: BigInt(net), liquidityGross: BigInt(gross),
  feeGrowthOutsideA: 0n, feeGrowthOutsideB: 0n, rewardGrowthsOutside: [0n, 0n, 0n],
});
const reward = (r) => ({
  mint: address(r.mint), vault: address(r.vault), extension: new Uint8Array(32),
  emissionsPerSecondX64: BigInt(r.emissions), growthGlobalX64: BigInt(r.growth),
});

function whirlpoolArgs(p) {
  return {
    whirlpoolsConfig: address(p.config), whirlpoolBump: new Uint8Array([p.bump]), tickSpacing: p.tickSpacing,
    feeTierIndexSeed: new Uint8Array([p.feeTierIndex & 255, p.feeTierIndex >> 8]), feeRate: p.feeRate,
    protocolFeeRate: p.protocolFeeRate, liquidity: BigInt(p.liquidity), sqrtPrice: BigInt(p.sqrtPrice),
    tickCurrentIndex: p.tickCurrentIndex, protocolFeeOwedA: BigInt(p.owedA), protocolFeeOwedB: BigInt(p.owedB),
    tokenMintA: address(p.mintA), tokenVaultA: address(p.vaultA), feeGrowthGlobalA: BigInt(p.growthA),
    tokenMintB: address(p.mintB), tokenVaultB: address(p.vaultB), feeGrowthGlobalB: BigInt(p.growthB),
    rewardLastUpdatedTimestamp: BigInt(p.rewardTs), rewardInfos: p.rewards.map(reward),
  };
}

function encodeArray(pool, a) {
  const ticks = a.ticks.map(tick);
  if (a.dynamic) {
    let bitmap = 0n;
    ticks.forEach((t, i) => { if (t.initialized) bitmap |= 1n << BigInt(i); });
    return hex(client.getDynamicTickArrayEncoder().encode({
      startTickIndex: a.start, whirlpool: address(pool), tickBitmap: bitmap,
      ticks: ticks.map((t) => (t.initialized ? { __kind: 'Initialized', fields: [t] } : { __kind: 'Uninitialized' })),
    }));
  }
  return hex(client.getFixedTickArrayEncoder().encode({ startTickIndex: a.start, ticks, whirlpool: address(pool) }));
}

// A Token-2022 transfer fee in force on a mint ([basis points, maximum fee]), or none.
const fee = (f) => (f ? { feeBps: f[0], maxFee: BigInt(f[1]) } : null);

const EMPTY = Array.from({ length: 88 }, () => tick([false, 0, 0]));

async function main() {
  const request = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  const answer = { pools: [] };
  for (const p of request.pools || []) {
    const whirlpool = hex(client.getWhirlpoolEncoder().encode(whirlpoolArgs(p)));
    const facade = client.getWhirlpoolDecoder().decode(Buffer.from(whirlpool, 'hex'));
    const arrays = p.arrays.map((a) => (a.absent ? null : encodeArray(p.address, a)));
    const pdas = [];
    for (const a of p.arrays) pdas.push((await client.getTickArrayAddress(address(p.address), a.start))[0]);
    const facades = p.arrays.map((a) => ({ startTickIndex: a.start, ticks: a.absent ? EMPTY : a.ticks.map(tick) }));
    const swaps = p.swaps.map(([amount, aToB]) => {
      try {
        const q = core.swapQuoteByInputToken(BigInt(amount), aToB, 0, facade, null, facades, 0n, fee(p.transferFeeA), fee(p.transferFeeB));
        return [String(q.tokenIn), String(q.tokenEstOut), String(q.tradeFee)];
      } catch (e) {
        return ['error', String(e)];
      }
    });
    answer.pools.push({ whirlpool, arrays, pdas, swaps });
  }
  answer.swap_v2 = (request.swap_v2 || []).map((c) => {
    const ix = client.getSwapV2Instruction({
      tokenProgramA: address(c.tokenProgramA), tokenProgramB: address(c.tokenProgramB),
      tokenAuthority: createNoopSigner(address(c.owner)), whirlpool: address(c.whirlpool),
      tokenMintA: address(c.mintA), tokenMintB: address(c.mintB),
      tokenOwnerAccountA: address(c.accountA), tokenVaultA: address(c.vaultA),
      tokenOwnerAccountB: address(c.accountB), tokenVaultB: address(c.vaultB),
      tickArray0: address(c.tickArrays[0]), tickArray1: address(c.tickArrays[1]), tickArray2: address(c.tickArrays[2]),
      oracle: address(c.oracle), amount: BigInt(c.amount), otherAmountThreshold: BigInt(c.minOut),
      sqrtPriceLimit: 0n, amountSpecifiedIsInput: true, aToB: c.aToB, remainingAccountsInfo: null,
    });
    // @solana/kit AccountRole: bit 0 writable, bit 1 signer.
    return {
      program: ix.programAddress, data: hex(ix.data),
      keys: ix.accounts.map((a) => [a.address, (a.role & 2) !== 0, (a.role & 1) !== 0]),
    };
  });
  answer.oracles = [];
  for (const w of request.oracles || []) answer.oracles.push((await client.getOracleAddress(address(w)))[0]);
  answer.sqrt_prices = (request.ticks || []).map((t) => String(core.tickIndexToSqrtPrice(t)));
  answer.tick_indexes = (request.sqrt_prices || []).map((s) => core.sqrtPriceToTickIndex(BigInt(s)));
  process.stdout.write(JSON.stringify(answer));
}
main().catch((e) => { process.stderr.write(String(e.stack || e)); process.exit(1); });
