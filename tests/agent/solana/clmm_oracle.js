// The Raydium SDK (npm @raydium-io/raydium-sdk-v2, pinned in package-lock.json) as the oracle for the agent's
// Raydium CLMM code: its layouts encode the accounts, its swapInternal (the port of the program's swap loop)
// quotes. Reads one JSON request on stdin, answers JSON on stdout. Offline.
const { PublicKey } = require('@solana/web3.js');
const BN = require('bn.js');
const layout = require('@raydium-io/raydium-sdk-v2/lib/raydium/clmm/layout.js');
const { swapInternal } = require('@raydium-io/raydium-sdk-v2/lib/raydium/clmm/libraries/swapSimulator.js');
const pda = require('@raydium-io/raydium-sdk-v2/lib/raydium/clmm/libraries/pda.js');

const PROGRAM = new PublicKey('CAMMCzo5YL8w4VFF8KVHrK22GGUsp5VTaW7grrKgrWqK');
const bn = (v) => new BN(String(v));
const sdk = require('@raydium-io/raydium-sdk-v2');
const feeOf = ([epoch, maximumFee, bps]) => ({ epoch: BigInt(epoch), maximumFee: BigInt(maximumFee), transferFeeBasisPoints: bps });
const feeConfig = ([older, newer]) => ({ olderTransferFee: feeOf(older), newerTransferFee: feeOf(newer) });
const zero = (L) => L.decode(Buffer.alloc(L.span));
const encode = (L, value) => { const buf = Buffer.alloc(L.span); L.encode(value, buf); return buf; };

const request = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const answer = { pools: [] };
for (const p of request.pools || []) {
  const pool = zero(layout.PoolInfoLayout);
  Object.assign(pool, {
    bump: 1, configId: new PublicKey(p.config), mintA: new PublicKey(p.mintA), mintB: new PublicKey(p.mintB),
    vaultA: new PublicKey(p.vaultA), vaultB: new PublicKey(p.vaultB), observationId: new PublicKey(p.observation),
    mintDecimalsA: 9, mintDecimalsB: 6, tickSpacing: p.tickSpacing, liquidity: bn(p.liquidity),
    sqrtPriceX64: bn(p.sqrtPrice), tickCurrent: p.tickCurrent, status: p.status, feeOn: p.feeOn,
    tickArrayBitmap: Buffer.from(p.bitmap, 'hex'),
  });
  const poolHex = encode(layout.PoolInfoLayout, pool).toString('hex');
  const config = zero(layout.ClmmConfigLayout);
  Object.assign(config, { tradeFeeRate: p.tradeFeeRate, protocolFeeRate: p.protocolFeeRate, fundFeeRate: p.fundFeeRate, tickSpacing: p.tickSpacing });
  const configHex = encode(layout.ClmmConfigLayout, config).toString('hex');
  const poolId = new PublicKey(p.address);
  const arrays = {};
  const hexes = p.arrays.map((a) => {
    const ta = zero(layout.TickArrayLayout);
    ta.poolId = poolId;
    ta.startTickIndex = a.start;
    ta.initializedTickCount = a.ticks.filter((t) => t[0]).length;
    ta.ticks = ta.ticks.map((t, i) => Object.assign(t, {
      tick: a.start + i * p.tickSpacing, liquidityNet: bn(a.ticks[i][1]), liquidityGross: bn(a.ticks[i][2]),
    }));
    const hex = encode(layout.TickArrayLayout, ta).toString('hex');
    arrays[a.start] = { address: pda.getPdaTickArrayAddress(PROGRAM, poolId, a.start).publicKey, value: layout.TickArrayLayout.decode(Buffer.from(hex, 'hex')) };
    return hex;
  });
  const poolInfo = layout.PoolInfoLayout.decode(Buffer.from(poolHex, 'hex'));
  const configInfo = layout.ClmmConfigLayout.decode(Buffer.from(configHex, 'hex'));
  // Token-2022 transfer fees (optional): [config of token 0 or null, of token 1 or null] and the epoch; the
  // input's fee by getTransferAmountFee off the amount, swapInternal on the rest, the output's fee off its
  // result, as the program's swap_v2 composes them.
  const tf = p.transferFees;
  const transferFee = (cfg, amount) => (tf && cfg
    ? sdk.getTransferAmountFee(amount, feeConfig(cfg), { epoch: tf.epoch, slotsInEpoch: 432000, absoluteSlot: 0 }, false).fee
    : new BN(0));
  const swaps = p.swaps.map(([amount, zeroForOne, starts]) => {
    try {
      const feeIn = transferFee(tf && tf.configs[zeroForOne ? 0 : 1], bn(amount));
      const r = swapInternal({
        programId: PROGRAM, poolId, poolInfo: { ...poolInfo }, tickArrays: starts.map((s) => arrays[s]), configInfo,
        tickarrayBitmapExtension: null, amountSpecified: bn(amount).sub(feeIn), sqrtPriceLimitX64: new BN(0), zeroForOne,
        isBaseInput: true, blockTimestamp: 0, includeExtraTickArrays: false,
      });
      const feeOut = transferFee(tf && tf.configs[zeroForOne ? 1 : 0], r.amountCalculated);
      return [r.allTrade, String(r.amountCalculated), String(r.feeAmount), String(r.amountSpecifiedRemaining),
        String(feeIn), String(feeOut)];
    } catch (e) {
      return ['error', String(e.message || e)];
    }
  });
  answer.pools.push({
    pool: poolHex, config: configHex, arrays: hexes, swaps,
    pdas: p.arrays.map((a) => arrays[a.start].address.toBase58()),
  });
}
const { ClmmInstrument } = require('@raydium-io/raydium-sdk-v2/lib/raydium/clmm/instrument.js');
answer.swap_v2 = (request.swap_v2 || []).map((c) => {
  const k = (v) => new PublicKey(v);
  const ix = ClmmInstrument.swapV2Instruction(
    PROGRAM, k(c.owner), k(c.pool), k(c.config), k(c.source), k(c.destination), k(c.inVault), k(c.outVault),
    k(c.inMint), k(c.outMint), c.tickArrays.map(k), k(c.observation), bn(c.amount), bn(c.minOut), new BN(0), true,
    pda.getPdaExBitmapAccount(PROGRAM, k(c.pool)).publicKey,
  );
  return {
    program: ix.programId.toBase58(), data: Buffer.from(ix.data).toString('hex'),
    keys: ix.keys.map((m) => [m.pubkey.toBase58(), m.isSigner, m.isWritable]),
  };
});
const { TickUtil } = require('@raydium-io/raydium-sdk-v2/lib/raydium/clmm/libraries/index.js');
answer.sqrt_prices = (request.ticks || []).map((t) => String(TickUtil.getSqrtPriceAtTick(t)));
answer.tick_indexes = (request.sqrt_prices || []).map((s) => TickUtil.getTickAtSqrtPrice(bn(s)));
process.stdout.write(JSON.stringify(answer));
