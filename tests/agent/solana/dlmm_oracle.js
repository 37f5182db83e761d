// Meteora's SDK (npm @meteora-ag/dlmm, pinned in package-lock.json) as the oracle for the agent's DLMM code:
// its Anchor coder decodes the accounts the test wrote, DLMM.swapQuote quotes from them. Offline: the DLMM
// object is made from the decoded accounts (no RPC), and Date.now is pinned to the request's clock.
const { Connection, PublicKey } = require('@solana/web3.js');
const BN = require('bn.js');
const DLMM = require('@meteora-ag/dlmm');

const request = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const program = DLMM.createProgram(new Connection('http://127.0.0.1:9'));
const PROGRAM = new PublicKey('LBUZKhRxPF3XUpBCjp4YzTKgLccjZhTSDM9YuVaPwxo');
const noFeeMint = (address) => ({ address, tlvData: Buffer.alloc(0) });
// A Token-2022 mint's bytes (hex), when the request gives them, as @solana/spl-token unpacks them: the SDK
// reads its TransferFeeConfig (swapQuote takes the transfer fees at `clock.epoch`).
const spl = require('@solana/spl-token');
const mintOf = (address, hex) => (hex
  ? spl.unpackMint(address, { data: Buffer.from(hex, 'hex'), owner: spl.TOKEN_2022_PROGRAM_ID, lamports: 1, executable: false }, spl.TOKEN_2022_PROGRAM_ID)
  : noFeeMint(address));
const answer = { pools: [] };
for (const p of request.pools || []) {
  const lbPair = DLMM.decodeAccount(program, 'lbPair', Buffer.from(p.lbPair, 'hex'));
  const pubkey = new PublicKey(p.address);
  const binArrays = p.binArrays.map((hex, i) => ({
    publicKey: DLMM.deriveBinArray(pubkey, new BN(p.indexes[i]), PROGRAM)[0],
    account: DLMM.decodeAccount(program, 'binArray', Buffer.from(hex, 'hex')),
  }));
  const dlmm = Object.create(DLMM.prototype);
  Object.assign(dlmm, {
    pubkey, program, lbPair, binArrayBitmapExtension: null,
    tokenX: { mint: mintOf(lbPair.tokenXMint, p.mintX) }, tokenY: { mint: mintOf(lbPair.tokenYMint, p.mintY) },
    clock: { epoch: new BN(p.epoch || 0) },
  });
  Date.now = () => p.now * 1000;
  const decoded = {
    activeId: lbPair.activeId, binStep: lbPair.binStep, baseFactor: lbPair.parameters.baseFactor,
    variableFeeControl: lbPair.parameters.variableFeeControl, protocolShare: lbPair.parameters.protocolShare,
    collectFeeMode: lbPair.parameters.collectFeeMode, functionType: lbPair.parameters.functionType,
    volatilityAccumulator: lbPair.vParameters.volatilityAccumulator,
    lastUpdateTimestamp: lbPair.vParameters.lastUpdateTimestamp.toString(),
    tokenXMint: lbPair.tokenXMint.toBase58(), reserveY: lbPair.reserveY.toBase58(),
    bitmap: lbPair.binArrayBitmap.map(String),
    bins: binArrays.map((b) => [b.account.index.toString(), b.account.lbPair.toBase58(),
      b.account.bins.slice(0, 3).map((x) => [String(x.amountX), String(x.amountY), String(x.price)])]),
  };
  const swaps = p.swaps.map(([amount, swapForY]) => {
    try {
      const q = dlmm.swapQuote(new BN(amount), swapForY, new BN(0), binArrays, false, 0);
      return [String(q.consumedInAmount), String(q.outAmount), String(q.fee), String(q.protocolFee)];
    } catch (e) {
      return ['error', String(e.message || e)];
    }
  });
  answer.pools.push({ decoded, swaps, pdas: binArrays.map((b) => b.publicKey.toBase58()) });
}
async function instructions() {
  answer.swap2 = [];
  for (const c of request.swap2 || []) {
    const k = (v) => new PublicKey(v);
    const ix = await program.methods.swap2(new BN(c.amount), new BN(c.minOut), { slices: [] }).accountsPartial({
      lbPair: k(c.pair), reserveX: k(c.reserveX), reserveY: k(c.reserveY), tokenXMint: k(c.mintX),
      tokenYMint: k(c.mintY), tokenXProgram: k(c.tokenProgram), tokenYProgram: k(c.tokenProgram), user: k(c.owner),
      userTokenIn: k(c.source), userTokenOut: k(c.destination), binArrayBitmapExtension: null, oracle: k(c.oracle),
      hostFeeIn: null, memoProgram: k('MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr'),
    }).remainingAccounts(c.binArrays.map((b) => ({ pubkey: k(b), isSigner: false, isWritable: true }))).instruction();
    answer.swap2.push({
      program: ix.programId.toBase58(), data: Buffer.from(ix.data).toString('hex'),
      keys: ix.keys.map((m) => [m.pubkey.toBase58(), m.isSigner, m.isWritable]),
    });
  }
}
instructions().then(() => process.stdout.write(JSON.stringify(answer)), (e) => {
  process.stderr.write(String(e.stack || e));
  process.exit(1);
});
