#!/usr/bin/env python3
"""Re-wraps a backup repository's passphrase key at the lowest scrypt cost the format allows.

`repo init` writes passphrase keys at scrypt N = 2^15; the format (docs/format/BACKUP_REPOSITORY.md,
"keys/<key-id>") accepts N from 2^14. The frozen test repository uses 2^14 so that every test that
opens it spends the least time in scrypt. This rewrites keys/<key-id> from the format document
alone (a second reading of the spec): unwrap the master key with KEK = scrypt(passphrase, salt, N,
r, p, 32) and AES-256-GCM (AAD "kb1:key:<repo id>:<key id>", box = nonce | ciphertext | tag),
then wrap it again under the KEK at N = 2^14 with the same salt. Nothing else changes.
Used only by make_testdata.sh; needs python3-cryptography.
Usage: rewrap_key.py REPO_DIR PASSPHRASE
"""
import base64
import hashlib
import json
import os
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

LOWEST_LOG2_N = 14


def kek(passphrase, kdf, n):
    return hashlib.scrypt(passphrase.encode(), salt=base64.b64decode(kdf["salt"]), n=n, r=kdf["r"],
                          p=kdf["p"], maxmem=256 << 20, dklen=32)


def main():
    repo, passphrase = sys.argv[1], sys.argv[2]
    with open(os.path.join(repo, "config")) as f:
        repo_id = json.load(f)["id"]
    keys_dir = os.path.join(repo, "keys")
    for name in os.listdir(keys_dir):
        path = os.path.join(keys_dir, name)
        with open(path) as f:
            key = json.load(f)
        kdf = key["kdf"]
        assert kdf["name"] == "scrypt", path
        aad = f"kb1:key:{repo_id}:{key['id']}".encode()
        box = base64.b64decode(key["wrapped"])
        master = AESGCM(kek(passphrase, kdf, kdf["n"])).decrypt(box[:12], box[12:], aad)
        assert len(master) == 64, path
        kdf["n"] = 1 << LOWEST_LOG2_N
        nonce = os.urandom(12)
        key["wrapped"] = base64.b64encode(
            nonce + AESGCM(kek(passphrase, kdf, kdf["n"])).encrypt(nonce, master, aad)).decode()
        with open(path, "w") as f:  # as the binary writes it: sorted keys, indent 2, newline
            f.write(json.dumps(key, indent=2, sort_keys=True) + "\n")
        print(f"rewrapped {os.path.relpath(path, repo)} at scrypt N=2^{LOWEST_LOG2_N}")


if __name__ == "__main__":
    main()
