// The peer of perf/bench_token.sh: oidc-provider (perf/peer/package.json
// pins the version; perf/peer/setup.sh installs it) configured as close to
// Ringside's token routes as it allows:
//   - the client credentials grant only, one static client with the same
//     client_id and secret as Ringside's, registered for client_secret_basic
//     or client_secret_post (--auth; a client has one method in
//     oidc-provider, it refuses the other);
//   - JWT access tokens (the resource indicators feature, as oidc-provider
//     needs for them: the default resource BENCH_JWT_RESOURCE, format jwt),
//     signed with the key Ringside signs with (--key, a PEM; RS256 for RSA,
//     ES256 for P-256), converted to a JWK by node's crypto; not stored
//     (oidc-provider keeps nothing for a JWT access token);
//   - introspection (RFC 7662). oidc-provider refuses to introspect JWTs
//     ("Structured JWT Tokens cannot be introspected"), so the token to
//     introspect is an opaque one of a second resource (BENCH_OPAQUE_RESOURCE,
//     format opaque), which it stores and looks up: its cheapest path;
//   - in-memory storage (below), no dev interactions, NODE_ENV=production.
// Node runs JavaScript on one thread, so --workers N forks N processes
// with the cluster module, sharing the port as Ringside's N workers do.
// Each process has its own memory; the adapter below copies every stored
// token to the other processes (through the primary) so that a token issued
// by one can be introspected by any. Only opaque tokens are stored, and
// only the benchmark's setup issues those: the copying costs the measured
// requests nothing.
//
// Usage: node oidc_peer.mjs --port P --workers N --key KEY.pem
//          --client-id ID --client-secret S [--auth basic|post]
//          [--scope "metrics:write"] [--ttl 3600]
// Prints "oidc-peer ready ALG" on stdout when every process listens.
import cluster from 'node:cluster';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const { values: opt } = parseArgs({
  options: {
    port: { type: 'string' },
    workers: { type: 'string', default: '1' },
    key: { type: 'string' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    auth: { type: 'string', default: 'basic' },
    scope: { type: 'string', default: 'metrics:write' },
    ttl: { type: 'string', default: '3600' },
  },
});

function die(msg) {
  process.stderr.write(`oidc_peer: ${msg}\n`);
  process.exit(2);
}
for (const k of ['port', 'key', 'client-id', 'client-secret']) {
  if (!opt[k]) die(`--${k} is required`);
}
if (!['basic', 'post'].includes(opt.auth)) die('--auth is basic or post');
const workers = Number(opt.workers);
if (!(workers >= 1)) die('--workers must be >= 1');

const BENCH_JWT_RESOURCE = 'urn:ringside:bench';
const BENCH_OPAQUE_RESOURCE = 'urn:ringside:bench:opaque';

// The signing key as a JWK, its algorithm from its type.
const keyObject = crypto.createPrivateKey(fs.readFileSync(opt.key));
const jwk = keyObject.export({ format: 'jwk' });
let alg;
if (jwk.kty === 'RSA') alg = 'RS256';
else if (jwk.kty === 'EC' && jwk.crv === 'P-256') alg = 'ES256';
else die(`--key: an RSA or P-256 private key is needed, not ${jwk.kty} ${jwk.crv ?? ''}`);
Object.assign(jwk, { alg, use: 'sig', kid: 'bench' });

if (cluster.isPrimary) {
  // Forks the workers, relays each stored token to the others, and says
  // ready once all listen. A worker that dies ends the peer: a benchmark
  // against fewer processes than stated would be wrong.
  let listening = 0;
  for (let i = 0; i < workers; i += 1) cluster.fork();
  cluster.on('listening', () => {
    listening += 1;
    if (listening === workers) process.stdout.write(`oidc-peer ready ${alg} workers=${workers}\n`);
  });
  cluster.on('message', (from, msg) => {
    if (msg?.replicate) {
      for (const w of Object.values(cluster.workers)) {
        if (w && w !== from) w.send(msg);
      }
    }
  });
  cluster.on('exit', (w, code, signal) => {
    if (!stopping) die(`worker ${w.process.pid} exited (${signal ?? code})`);
  });
  let stopping = false;
  const stop = () => {
    stopping = true;
    for (const w of Object.values(cluster.workers)) w?.kill('SIGTERM');
    setTimeout(() => process.exit(0), 2000).unref();
    cluster.on('exit', () => {
      if (Object.keys(cluster.workers).length === 0) process.exit(0);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  // In-memory adapter: one Map per process, entries expire; a stored token
  // is sent to the primary for the other processes.
  const store = new Map(); // "Model:id" -> { payload, expiresAt }
  const MAX_ENTRIES = 100000;
  const put = (key, payload, expiresIn) => {
    if (store.size >= MAX_ENTRIES) store.delete(store.keys().next().value);
    store.set(key, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
  };
  process.on('message', (msg) => {
    if (msg?.replicate) put(...msg.replicate);
  });
  class ReplicatedMemoryAdapter {
    constructor(name) { this.name = name; }

    key(id) { return `${this.name}:${id}`; }

    async upsert(id, payload, expiresIn) {
      put(this.key(id), payload, expiresIn);
      process.send({ replicate: [this.key(id), payload, expiresIn] });
    }

    async find(id) {
      const e = store.get(this.key(id));
      if (!e) return undefined;
      if (e.expiresAt <= Date.now()) {
        store.delete(this.key(id));
        return undefined;
      }
      return e.payload;
    }

    async findByUserCode() { return undefined; }

    async findByUid() { return undefined; }

    async consume(id) {
      const e = store.get(this.key(id));
      if (e) e.payload.consumed = Math.floor(Date.now() / 1000);
    }

    async destroy(id) { store.delete(this.key(id)); }

    async revokeByGrantId() {}
  }

  const scopes = opt.scope.split(' ').filter(Boolean);
  const ttl = Number(opt.ttl);
  const resourceServers = {
    [BENCH_JWT_RESOURCE]: {
      scope: opt.scope, audience: BENCH_JWT_RESOURCE, accessTokenTTL: ttl,
      accessTokenFormat: 'jwt', jwt: { sign: { alg } },
    },
    [BENCH_OPAQUE_RESOURCE]: {
      scope: opt.scope, audience: BENCH_OPAQUE_RESOURCE, accessTokenTTL: ttl,
      accessTokenFormat: 'opaque',
    },
  };
  const provider = new Provider(`http://127.0.0.1:${opt.port}`, {
    adapter: ReplicatedMemoryAdapter,
    jwks: { keys: [jwk] },
    clients: [{
      client_id: opt['client-id'],
      client_secret: opt['client-secret'],
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: opt.auth === 'basic' ? 'client_secret_basic' : 'client_secret_post',
      scope: opt.scope,
      // Unused (no ID tokens here), but the client's metadata must name an
      // algorithm the keystore has: its default is RS256.
      id_token_signed_response_alg: alg,
    }],
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    scopes,
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: (ctx, client, oneOf) => oneOf ?? BENCH_JWT_RESOURCE,
        useGrantedResource: () => false,
        getResourceServerInfo: (ctx, indicator) => {
          const rs = resourceServers[indicator];
          if (!rs) throw new errors.InvalidTarget();
          return rs;
        },
      },
    },
    ttl: { ClientCredentials: ttl },
  });
  provider.on('server_error', (ctx, err) => process.stderr.write(`oidc_peer: server_error ${err.stack}\n`));
  http.createServer(provider.callback()).listen(Number(opt.port), '127.0.0.1');
  process.on('SIGTERM', () => process.exit(0));
}
