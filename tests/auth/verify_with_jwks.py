#!/usr/bin/python3
"""Checks Ringside's JWK Set and tokens with another implementation (PyJWT,
Debian python3-jwt, and its `cryptography` backend): TEST ONLY.

usage: verify_with_jwks.py JWKS_FILE ISSUER AUDIENCE TOKEN...

For every key of the set: the members RFC 7517/7518 require, and its kid
recomputed here as the RFC 7638 thumbprint. For every token: its header's
kid names a key of the set, and PyJWT verifies it with that key alone (the
algorithm the key says, the issuer, the audience, the expiry). Prints one
line per token and exits 0 only if all pass.
"""
import base64
import hashlib
import json
import sys

import jwt


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(k):
    # RFC 7638 3.2: the required members only, sorted, no whitespace.
    req = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}[k["kty"]]
    canon = json.dumps({m: k[m] for m in req}, separators=(",", ":"), sort_keys=True)
    return b64(hashlib.sha256(canon.encode()).digest())


def main():
    if len(sys.argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        jwks = json.load(f)
    iss, aud = sys.argv[2], sys.argv[3]
    keys = {}
    for k in jwks["keys"]:
        assert k["use"] == "sig", k
        if k["kty"] == "RSA":
            assert k["alg"] == "RS256", k
        elif k["kty"] == "EC":
            assert k["alg"] == "ES256" and k["crv"] == "P-256", k
            assert len(base64.urlsafe_b64decode(k["x"] + "==")) == 32, k
            assert len(base64.urlsafe_b64decode(k["y"] + "==")) == 32, k
        else:
            raise AssertionError("kty %r" % k["kty"])
        if k["kid"] != thumbprint(k):
            raise AssertionError("kid %s is not the RFC 7638 thumbprint %s"
                                 % (k["kid"], thumbprint(k)))
        assert k["kid"] not in keys, "kid twice"
        keys[k["kid"]] = (jwt.PyJWK(k), k["alg"])
    for tok in sys.argv[4:]:
        kid = jwt.get_unverified_header(tok).get("kid")
        if kid not in keys:
            raise AssertionError("token kid %r not in the JWK Set" % kid)
        key, alg = keys[kid]
        claims = jwt.decode(tok, key.key, algorithms=[alg],
                            issuer=iss, audience=aud,
                            options={"require": ["exp", "iat", "sub", "jti"]})
        print("ok", alg, kid, claims["sub"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
