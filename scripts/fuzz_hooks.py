"""schemathesis hooks for `just fuzz` (scripts/fuzz.sh loads this with SCHEMATHESIS_HOOKS).

The fuzz user's token, kept valid: generated cases include `POST /auth/logout-all`, a password
change and session deletions, which (rightly) end the user's sessions. A fixed token would then
make every later authenticated case a 401 that says nothing about the operation under test. So
the token is checked (at most once a second) and, once refused, the user signs in again.
"""
import os

import requests
import schemathesis

URL = os.environ["IRONCLAD_FUZZ_URL"]
CREDENTIALS = {
    "email": os.environ["IRONCLAD_FUZZ_EMAIL"],
    "password": os.environ["IRONCLAD_FUZZ_PASSWORD"],
}


@schemathesis.auth(refresh_interval=1)
class FuzzUser:
    token = None

    def get(self, case, ctx):
        if self.token:
            me = requests.get(
                f"{URL}/api/v1/me",
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=10,
            )
            if me.status_code == 200:
                return self.token
        login = requests.post(f"{URL}/api/v1/auth/login", json=CREDENTIALS, timeout=10)
        login.raise_for_status()
        self.token = login.json()["access_token"]
        return self.token

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
