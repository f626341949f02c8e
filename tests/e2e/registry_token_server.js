// A registry token service (the Docker/OCI "Bearer" flow) for the tests: the registry answers 401
// naming this service; a client asks it for a token with Basic credentials; it answers with a JWT
// signed by a key whose certificate the registry trusts (auth.token.rootcertbundle).
//   node registry_token_server.js PORT KEY_PEM CERT_PEM ISSUER USER:PASSWORD
// Grants the one user every action asked for; refuses anyone else (anonymous too).
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');

const [port, keyFile, certFile, issuer, userPass] = process.argv.slice(2);
const key = fs.readFileSync(keyFile, 'utf8');
const certDer = fs.readFileSync(certFile, 'utf8')
  .replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
const b64url = (buf) => Buffer.from(buf).toString('base64')
  .replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');

function token(service, scopes, subject) {
  const now = Math.floor(Date.now() / 1000);
  // scope: "repository:NAME:pull,push" (possibly several)
  const access = scopes.map((s) => {
    const parts = s.split(':');
    return { type: parts[0], name: parts.slice(1, -1).join(':'), actions: parts[parts.length - 1].split(',') };
  });
  const header = { typ: 'JWT', alg: 'RS256', x5c: [certDer] };
  const claims = {
    iss: issuer, sub: subject, aud: service, exp: now + 300, nbf: now - 10, iat: now,
    jti: crypto.randomBytes(8).toString('hex'), access,
  };
  const body = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const signature = crypto.createSign('RSA-SHA256').update(body).sign(key);
  return `${body}.${b64url(signature)}`;
}

let issued = 0;
http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/issued') {  // how many tokens went out, for assertions
    res.end(String(issued));
    return;
  }
  const auth = req.headers.authorization || '';
  const given = auth.startsWith('Basic ') ? Buffer.from(auth.slice(6), 'base64').toString() : '';
  if (given !== userPass) {
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] }));
    return;
  }
  issued++;
  const t = token(url.searchParams.get('service') || '', url.searchParams.getAll('scope'),
    given.split(':')[0]);
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ token: t, access_token: t, expires_in: 300, issued_at: new Date().toISOString() }));
}).listen(Number(port), '127.0.0.1');
