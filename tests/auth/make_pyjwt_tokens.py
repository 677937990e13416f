#!/usr/bin/python3
"""Makes the test-only-pyjwt-*.jwt fixtures: tokens from another JWT
implementation (PyJWT, Debian's python3-jwt), for tests/unit/test_jwt.c.
Run once from tests/auth/ (`/usr/bin/python3 make_pyjwt_tokens.py`); the
tests read the committed files and never need Python. Every run makes new
ES256/RS256 signatures (ECDSA is randomised, jti fixed), equally valid."""
import jwt

ISS = "https://ringside.test"
AUD = "ringside-test"
IAT = 1700000000


def claims(sub, aud):
    return {
        "iss": ISS,
        "aud": aud,
        "sub": sub,
        "organization_id": "org-pyjwt",
        # one unknown scope, which the verifier must ignore
        "scope": "metrics:write agents:read pyjwt:unknown",
        "jti": "pyjwt-" + sub,
        "iat": IAT,
        "nbf": IAT,
        "exp": IAT + 3600,
    }


def key(path):
    with open(path, "rb") as f:
        data = f.read()
    return data.rstrip(b"\r\n") if path.endswith(".secret") else data


for alg, keyfile, aud in [
    ("HS256", "test-only-hs256.secret", AUD),
    ("ES256", "test-only-es256-private.pem", ["someone-else", AUD]),
    ("RS256", "test-only-rs256-private.pem", AUD),
]:
    tok = jwt.encode(claims("agent-pyjwt-" + alg.lower(), aud), key(keyfile),
                     algorithm=alg)
    with open("test-only-pyjwt-%s.jwt" % alg.lower(), "w") as f:
        f.write(tok + "\n")
    print(alg, jwt.__version__, len(tok))
