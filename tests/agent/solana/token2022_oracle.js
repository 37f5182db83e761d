// Token-2022 transfer fees by the published libraries (pinned in package-lock.json): @solana/spl-token decodes
// the mints (unpackMint + getTransferFeeConfig/getTransferHook) and computes the fee by epoch; the Raydium
// SDK's getTransferAmountFee (fee off an amount, and the amount to send for a post-fee amount) and its
// CurveCalculator give the CPMM swap with transfer fees as raydium-cp-swap composes them; Orca's core gives
// tryApplyTransferFee / tryReverseApplyTransferFee. Reads one JSON request on stdin, answers on stdout.
const { PublicKey } = require('@solana/web3.js');
const spl = require('@solana/spl-token');
const BN = require('bn.js');
const sdk = require('@raydium-io/raydium-sdk-v2');
const core = require('@orca-so/whirlpools-core');

const bn = (v) => new BN(String(v));
const fee = ([epoch, maximumFee, bps]) => ({
  epoch: BigInt(epoch), maximumFee: BigInt(maximumFee), transferFeeBasisPoints: bps,
});
const config = ([older, newer]) => ({
  transferFeeConfigAuthority: PublicKey.default, withdrawWithheldAuthority: PublicKey.default, withheldAmount: 0n,
  olderTransferFee: fee(older), newerTransferFee: fee(newer),
});
// Only `epoch` picks the fee; slotsInEpoch and absoluteSlot only feed the SDK's expiration time.
const epochInfo = (epoch) => ({ epoch, slotIndex: 0, slotsInEpoch: 432000, absoluteSlot: epoch * 432000 });
const orca = (f) => ({ feeBps: f.transferFeeBasisPoints, maxFee: f.maximumFee });

const request = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const answer = {};
answer.mints = (request.mints || []).map((hex) => {
  const address = PublicKey.unique();
  const info = { data: Buffer.from(hex, 'hex'), owner: spl.TOKEN_2022_PROGRAM_ID, lamports: 1, executable: false };
  const mint = spl.unpackMint(address, info, spl.TOKEN_2022_PROGRAM_ID);
  const c = spl.getTransferFeeConfig(mint);
  const hook = spl.getTransferHook(mint);
  const f = (x) => [String(x.epoch), String(x.maximumFee), x.transferFeeBasisPoints];
  return {
    decimals: mint.decimals,
    config: c && {
      authority: c.transferFeeConfigAuthority.toBase58(), withdraw: c.withdrawWithheldAuthority.toBase58(),
      withheld: String(c.withheldAmount), older: f(c.olderTransferFee), newer: f(c.newerTransferFee),
    },
    hook: hook && hook.programId.toBase58(),
  };
});
answer.fees = (request.fees || []).map(([cfg, epoch, amount]) => {
  const c = config(cfg);
  const inForce = spl.getEpochFee(c, BigInt(epoch));
  const off = sdk.getTransferAmountFee(bn(amount), c, epochInfo(epoch), false);
  const add = sdk.getTransferAmountFee(bn(amount), c, epochInfo(epoch), true);
  let applied, reversed;
  try { applied = String(core.tryApplyTransferFee(BigInt(amount), orca(inForce))); } catch (e) { applied = 'error'; }
  try { reversed = String(core.tryReverseApplyTransferFee(BigInt(amount), orca(inForce))); } catch (e) { reversed = 'error'; }
  return {
    spl: String(spl.calculateEpochFee(c, BigInt(epoch), BigInt(amount))),
    raydium: String(off.fee), raydium_pre: String(add.amount), orca_applied: applied, orca_reversed: reversed,
  };
});
// raydium-cp-swap swap_base_input: the input mint's fee off amount_in, the curve, the output mint's fee off
// what the vault sends.
answer.cpmm = (request.cpmm || []).map(([amountIn, rIn, rOut, trade, creator, protocol, fund, onInput, cfgIn, cfgOut, epoch]) => {
  const feeIn = cfgIn ? sdk.getTransferAmountFee(bn(amountIn), config(cfgIn), epochInfo(epoch), false).fee : bn(0);
  const actual = bn(amountIn).sub(feeIn);
  if (actual.lten(0)) return ['error', 'input fee'];
  const r = sdk.CurveCalculator.swapBaseInput(actual, bn(rIn), bn(rOut), bn(trade), bn(creator), bn(protocol), bn(fund), onInput);
  const out = r.outputAmount;
  const feeOut = cfgOut ? sdk.getTransferAmountFee(out, config(cfgOut), epochInfo(epoch), false).fee : bn(0);
  return [String(feeIn), String(out), String(feeOut), String(out.sub(feeOut))];
});
answer.set_transfer_fee = (request.set_transfer_fee || []).map(([mint, authority, bps, maximum]) => {
  const ix = spl.createSetTransferFeeInstruction(new PublicKey(mint), new PublicKey(authority), [], bps, BigInt(maximum));
  return { data: Buffer.from(ix.data).toString('hex'), keys: ix.keys.map((k) => [k.pubkey.toBase58(), k.isSigner, k.isWritable]) };
});
process.stdout.write(JSON.stringify(answer));
