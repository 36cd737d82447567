// Verifies tokens (one per line on stdin) with jose's remote JWK Set, as a Node resource
// server would: node verify_tokens.mjs JWKS_URL ISSUER
import { createRemoteJWKSet, jwtVerify } from "jose";
const [jwksUrl, issuer] = process.argv.slice(2);
const input = await new Promise((resolve) => {
  let data = "";
  process.stdin.on("data", (chunk) => (data += chunk));
  process.stdin.on("end", () => resolve(data));
});
const jwks = createRemoteJWKSet(new URL(jwksUrl));
let ok = 0, failed = 0;
for (const token of input.trim().split("\n").filter(Boolean)) {
  try {
    await jwtVerify(token, jwks, { issuer, audience: issuer, typ: "at+jwt" });
    ok++;
  } catch (e) {
    failed++;
    console.error(e.code ?? e.message);
  }
}
console.log(`${ok} ok, ${failed} failed`);
