// The Raydium SDK (npm @raydium-io/raydium-sdk-v2, pinned in package-lock.json) as an oracle for the agent's
// Solana math: reads one JSON request on stdin, answers JSON on stdout. Offline: no RPC, no API.
const { PublicKey } = require('@solana/web3.js');
const BN = require('bn.js');
const sdk = require('@raydium-io/raydium-sdk-v2');
const Liquidity = require('@raydium-io/raydium-sdk-v2/lib/raydium/liquidity/liquidity.js').default;

const bn = (v) => new BN(String(v));
const key = (v) => new PublicKey(v);

const KEYS = {
  cpmm_pool: ['configId', 'poolCreator', 'vaultA', 'vaultB', 'mintLp', 'mintA', 'mintB', 'mintProgramA', 'mintProgramB', 'observationId'],
  cpmm_config: ['protocolOwner', 'fundOwner'],
  amm_v4: ['baseVault', 'quoteVault', 'baseMint', 'quoteMint', 'lpMint', 'openOrders', 'marketId', 'marketProgramId', 'targetOrders', 'withdrawQueue', 'lpVault', 'owner'],
};
function encodeWithSdkLayout(layout, fields, keys) {
  // u8/u16/bool fields are plain numbers or booleans in buffer-layout; u64/u128 are BNs; keys are PublicKeys.
  const span = Object.fromEntries(layout.fields.map((f) => [f.property, f.span]));
  const value = {};
  for (const [name, v] of Object.entries(fields)) {
    if (keys.includes(name)) value[name] = key(v);
    else if (typeof v === 'boolean') value[name] = v;
    else value[name] = span[name] <= 2 ? Number(v) : bn(v);
  }
  for (const f of layout.fields) {
    if (!f.property || f.property in value) continue;
    if (f.elementLayout) value[f.property] = Array(f.count).fill(f.elementLayout.span <= 2 ? 0 : bn(0));
    else value[f.property] = f.span === 32 ? PublicKey.default : f.span <= 2 ? 0 : bn(0);
  }
  const buf = Buffer.alloc(layout.span);
  layout.encode(value, buf);
  return buf.toString('hex');
}

const request = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const answer = {};
answer.cpmm_pools = (request.cpmm_pools || []).map((f) => encodeWithSdkLayout(sdk.CpmmPoolInfoLayout, f, KEYS.cpmm_pool));
answer.cpmm_configs = (request.cpmm_configs || []).map((f) => encodeWithSdkLayout(sdk.CpmmConfigInfoLayout, f, KEYS.cpmm_config));
answer.amm_v4 = (request.amm_v4 || []).map((f) => encodeWithSdkLayout(sdk.liquidityStateV4Layout, f, KEYS.amm_v4));
answer.cpmm_swaps = (request.cpmm_swaps || []).map(([amountIn, rIn, rOut, trade, creator, protocol, fund, onInput]) => {
  const r = sdk.CurveCalculator.swapBaseInput(bn(amountIn), bn(rIn), bn(rOut), bn(trade), bn(creator), bn(protocol), bn(fund), onInput);
  return [r.outputAmount, r.tradeFee, r.protocolFee, r.fundFee, r.creatorFee].map(String);
});
const MINT_A = new PublicKey('So11111111111111111111111111111111111111112');
const MINT_B = new PublicKey('EPjFWdd5AufqSSqeM2qJxekfeBc7QoETadXTBaGUK1DX');
answer.amm_v4_swaps = (request.amm_v4_swaps || []).map(([amountIn, base, quote, baseIn]) => {
  const poolInfo = {
    version: 4,
    mintA: { address: MINT_A.toBase58(), decimals: 9 },
    mintB: { address: MINT_B.toBase58(), decimals: 6 },
    baseReserve: bn(base),
    quoteReserve: bn(quote),
  };
  const r = Liquidity.prototype.computeAmountOut.call({}, {
    poolInfo, amountIn: bn(amountIn), mintIn: baseIn ? MINT_A : MINT_B, mintOut: baseIn ? MINT_B : MINT_A, slippage: 0,
  });
  return [String(r.amountOut), String(r.fee)];
});
const ixJson = (ix) => ({
  program: ix.programId.toBase58(),
  data: Buffer.from(ix.data).toString('hex'),
  keys: ix.keys.map((k) => [k.pubkey.toBase58(), k.isSigner, k.isWritable]),
});
answer.cpmm_ix = (request.cpmm_ix || []).map((a) =>
  ixJson(sdk.makeSwapCpmmBaseInInstruction(...a.keys.map(key), bn(a.amountIn), bn(a.minOut))));
answer.amm_v4_ix = (request.amm_v4_ix || []).map((a) =>
  ixJson(sdk.swapBaseInV2Instruction(...a.keys.map(key), bn(a.amountIn), bn(a.minOut))));
answer.authorities = {
  cpmm: sdk.getPdaPoolAuthority(new PublicKey('CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C')).publicKey.toBase58(),
  amm_v4: sdk.getLiquidityAssociatedAuthority({ programId: new PublicKey('675kPX9MHTjS2zt1qfr1NYHuzeLXfQM9H24wFSUt1Mp8') }).publicKey.toBase58(),
};
process.stdout.write(JSON.stringify(answer));
