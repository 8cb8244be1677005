"""Keys and tokens, made fresh for every run with PyJWT + cryptography (an implementation
independent of both edge-auth and jose).

One issuer `https://bench.local`, audience `bench`. Per algorithm one key:
HS256 (a 43-character random secret, handed to the workers as the text var BENCH_HS_SECRET and
used as its UTF-8 bytes), RS256 (RSA 2048), ES256 (P-256), EdDSA (Ed25519).
"""

import base64
import hashlib
import json
import os
import secrets
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER = "https://bench.local"
AUDIENCE = "bench"
ALGS = ("HS256", "RS256", "ES256", "EdDSA")
HS_SECRET_VAR = "BENCH_HS_SECRET"


def issuer_hash(iss):
    """`{ih}` of the Redis key schema: first 16 hex digits of SHA-256(iss)."""
    return hashlib.sha256(iss.encode()).hexdigest()[:16]


class KeySet:
    """A signing key and the matching worker configuration for one algorithm."""

    def __init__(self, alg):
        self.alg = alg
        self.kid = f"bench-{alg.lower()}-{secrets.token_hex(4)}"
        self.secret_text = None
        if alg == "HS256":
            self.secret_text = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
            self.signing_key = self.secret_text.encode()
            self.public_jwk = None
        elif alg == "RS256":
            self.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.public_jwk = RSAAlgorithm.to_jwk(self.signing_key.public_key(), as_dict=True)
        elif alg == "ES256":
            self.signing_key = ec.generate_private_key(ec.SECP256R1())
            self.public_jwk = ECAlgorithm.to_jwk(self.signing_key.public_key(), as_dict=True)
        elif alg == "EdDSA":
            self.signing_key = ed25519.Ed25519PrivateKey.generate()
            self.public_jwk = OKPAlgorithm.to_jwk(self.signing_key.public_key(), as_dict=True)
        else:
            raise ValueError(alg)
        if self.public_jwk is not None:
            self.public_jwk.update({"kid": self.kid, "alg": alg, "use": "sig"})

    def worker_vars(self):
        """Text bindings that configure this issuer: ISSUERS (+ the HMAC secret var)."""
        entry = {"issuer": ISSUER, "audiences": [AUDIENCE]}
        out = {}
        if self.alg == "HS256":
            entry["hmac_secrets"] = [{"kid": self.kid, "alg": "HS256", "secret_var": HS_SECRET_VAR}]
            out[HS_SECRET_VAR] = self.secret_text
        else:
            entry["jwks"] = {"keys": [self.public_jwk]}
        out["ISSUERS"] = json.dumps([entry])
        return out

    def mint(self, sub, jti, now=None, lifetime=7200):
        """One signed token: iss, aud, sub, jti, iat, exp, scope."""
        now = int(now if now is not None else time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "jti": jti,
                  "iat": now - 5, "exp": now + lifetime, "scope": "read write"}
        return jwt.encode(claims, self.signing_key, algorithm=self.alg, headers={"kid": self.kid})

    def mint_file(self, path, count, tag, progress=None):
        """Writes `count` distinct tokens, one a line, to `path`; returns the time taken (s)."""
        started = time.monotonic()
        now = int(time.time())
        with open(path, "w") as f:
            for i in range(count):
                f.write(self.mint(f"user-{i % 5000}", f"{tag}-{i}", now=now))
                f.write("\n")
                if progress and i and i % 20000 == 0:
                    progress(i)
        return time.monotonic() - started

    def tampered(self, token):
        """`token` with one signature character changed (a bad signature, same shape)."""
        head, body, sig = token.split(".")
        flip = "A" if sig[5] != "A" else "B"
        return ".".join([head, body, sig[:5] + flip + sig[6:]])
