"""Secret and personal-data forms that must never reach CMS, SLS or the disk (#24 §7).

Each entry: (what it is, an error message as a component or library would write it, the part that must not
survive). Written by hand from the formats' public descriptions, independent of ``redact.py``. Every value
is made up; each is shaped like the real thing (length, alphabet, prefix, checksum) so a detector that
checks shapes sees a real-looking one.
"""

from __future__ import annotations

AK_SECRET = "q7Zt2LmB9xVwR4kPn8HsJ3cYf6DgA1"  # 30 characters, like an AccessKey secret
STS_TOKEN = "CAIS" + "kF9zQ2mX7vB4nR8tL1wY6pH3sD5gJ0cA" * 3 + "GoABxyz"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkphbmUgRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
OPENAI = "sk-proj-Ab3De5Gh7Jk9Mn2Pq4St6Vw8Yz1Bc3Df5Gh7Jk9LmNo"
PRIVATE_KEY_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"

CORPUS: list[tuple[str, str, str]] = [
    ("env AccessKey secret", f"ALIBABA_CLOUD_ACCESS_KEY_SECRET={AK_SECRET} is not valid", AK_SECRET),
    ("env STS token", f"bad ALIBABA_CLOUD_SECURITY_TOKEN={STS_TOKEN}", STS_TOKEN),
    ("CLI flag secret", f"aliyun configure --access-key-secret {AK_SECRET} failed", AK_SECRET),
    ("CLI flag with =", "ran tool --password=Tr0ub4dor&3xyz and it failed", "Tr0ub4dor&3xyz"),
    ("python dict secret", f"config {{'secret': '{AK_SECRET}', 'region': 'cn-hangzhou'}}", AK_SECRET),
    ("json password", 'payload {"user": "ops", "password": "S3cr3t-Passw0rd!"}', "S3cr3t-Passw0rd!"),
    ("bearer header", f"401 for Authorization: Bearer {OPENAI}", OPENAI),
    ("bearer lowercase", "rejected token bearer abcDEF123456ghiJKL789mno", "abcDEF123456ghiJKL789mno"),
    (
        "basic auth header",
        "Authorization: Basic dXNlcjpodW50ZXIyaHVudGVyMg==",
        "dXNlcjpodW50ZXIyaHVudGVyMg==",
    ),
    ("password=", "login failed with password=hunter2hunter2", "hunter2hunter2"),
    ("passwd:", "passwd: correcthorsebattery", "correcthorsebattery"),
    ("pwd=", "db pwd=Zx9!qW2#eR4t", "Zx9!qW2#eR4t"),
    ("api_key=", f"call with api_key={OPENAI} failed", OPENAI),
    ("openai key bare", f"Incorrect API key provided: {OPENAI}.", OPENAI),
    ("openai env", f"OPENAI_API_KEY={OPENAI}", OPENAI),
    (
        "anthropic key",
        "invalid x-api-key sk-ant-api03-Zq8Wm2Xv5Bn7Lk4Jh1Gf9Ds3Aa6Pp0Oo-Ii8Uu7Yy",
        "Zq8Wm2Xv5Bn7Lk4Jh1Gf9",
    ),
    ("x-api-key header", "X-Api-Key: 4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c", "4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"),
    ("JWT", f"token {JWT} expired", JWT.split(".")[1]),
    ("JWT in header", f"Authorization: {JWT}", JWT.split(".")[2]),
    ("postgres URL", "could not connect to postgresql://app:pG4ssw0rd9@db.internal:5432/flows", "pG4ssw0rd9"),
    ("mysql URL env", "DATABASE_URL=mysql://root:My5qlR00t!@10.0.0.1/app", "My5qlR00t!"),
    ("redis URL no user", "redis://:R3disS3cret@cache:6379/0 refused", "R3disS3cret"),
    ("mongodb srv", "mongodb+srv://svc:M0ngoPa55word@cluster0.example.net/db", "M0ngoPa55word"),
    ("https userinfo", "GET https://bob:B0bsPassw0rd@api.example.com/v1 failed", "B0bsPassw0rd"),
    (
        "access_token query",
        "GET https://graph.example.com/me?access_token=EAAGm0PX4ZCpsBAKZCZD1x",
        "EAAGm0PX4ZCpsBAKZCZD1x",
    ),
    (
        "token query",
        "https://hooks.example.com/x?foo=1&token=9f8e7d6c5b4a39281706f5e4",
        "9f8e7d6c5b4a39281706f5e4",
    ),
    (
        "sig query",
        "https://blob.example.net/c/b?sv=2020&sig=Jd8%2Fk3LmQz9WvXyT4u0%3D",
        "Jd8%2Fk3LmQz9WvXyT4u0",
    ),
    ("AccessKeySecret pair", f"AccessKeySecret={AK_SECRET}", AK_SECRET),
    ("SecurityToken encoded", f"POST&%2F&SecurityToken%3D{STS_TOKEN}%26Action", STS_TOKEN),
    ("AccessKeyId full", "AccessKeyId=LTAI5tQ9mZr2Xw7Lp4Kv8Nb3 is disabled", "LTAI5tQ9mZr2Xw7Lp4Kv8Nb3"),
    ("bare Alibaba key id", "key LTAI5tQ9mZr2Xw7Lp4Kv8Nb3 has no permission", "LTAI5tQ9mZr2Xw7Lp4Kv8Nb3"),
    ("AWS key id", "The AWS Access Key Id AKIAIOSFODNN7EXAMPLE does not exist", "AKIAIOSFODNN7EXAMPLE"),
    (
        "AWS secret",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG",
    ),
    (
        "GitHub token",
        "bad credentials ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
        "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    ),
    (
        "Slack token",
        "slack said invalid_auth for xoxb-2048-4096-AbCdEfGhIjKlMnOpQrStUv",
        "xoxb-2048-4096-AbCdEfGhIjKlMnOpQrStUv",
    ),
    (
        "Google API key",
        "key=AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q is invalid",
        "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    ),
    (
        "Hugging Face token",
        "401 with hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
        "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    ),
    ("Stripe key", "No such key sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    (
        "private key inline",
        f"-----BEGIN PRIVATE KEY-----{PRIVATE_KEY_BODY}-----END PRIVATE KEY-----",
        PRIVATE_KEY_BODY,
    ),
    (
        "private key json",
        f'{{"private_key": "-----BEGIN RSA PRIVATE KEY-----\\n{PRIVATE_KEY_BODY}"}}',
        PRIVATE_KEY_BODY,
    ),
    ("client_secret", "oauth client_secret=Gv7Kp2Lq9Zx4Wm8Rt3Ns6Yb1 rejected", "Gv7Kp2Lq9Zx4Wm8Rt3Ns6Yb1"),
    (
        "secret_key python",
        'SECRET_KEY = "django-insecure-9x8c7v6b5n4m3k2j1h"',
        "django-insecure-9x8c7v6b5n4m3k2j1h",
    ),
    ("cookie session", "Cookie: sessionid=7d1f0e9c8b7a6f5e4d3c2b1a; theme=dark", "7d1f0e9c8b7a6f5e4d3c2b1a"),
    ("yaml token", "token: 0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d", "0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d"),
    ("x-acs-security-token header", f"x-acs-security-token: {STS_TOKEN}", STS_TOKEN),
    ("e-mail", "no account for jane.doe+flows@example.com", "jane.doe+flows@example.com"),
    ("e-mail in brackets", "From: John Smith <john.smith@corp.example.cn>", "john.smith@corp.example.cn"),
    ("card spaced", "payment declined for 4111 1111 1111 1111", "4111 1111 1111 1111"),
    ("card dashed", "card 5500-0000-0000-0004 expired", "5500-0000-0000-0004"),
    ("card plain amex", "charge 378282246310005 failed", "378282246310005"),
    ("phone international", "SMS to +86 138 0013 8000 failed", "138 0013 8000"),
    ("phone CN mobile", "user 13800138000 not found", "13800138000"),
    ("phone US", "call (415) 555-2671 back", "555-2671"),
    ("CN resident id", "id 11010519491231002X rejected", "11010519491231002X"),
]
"""54 forms: 44 secrets and 10 of personal data."""

HARMLESS: list[str] = [
    "Flow 'poem' failed in node OpenAIModel-x1Y2z: RateLimitError: 429 Too Many Requests",
    "KeyError: 'temperature'",
    "timeout after 30.0 s calling https://api.example.com/v1/chat/completions",
    "run 3f2b6c1e-8d4a-4b7e-9f10-2a3b4c5d6e7f failed at step 12 of 40",
    "ValueError: invalid literal for int() with base 10: 'abc'",
    "AuthenticationError: Invalid token provided",
    'FATAL: password authentication failed for user "langflow"',
    "the secret manager returned nothing; fetch basic information from the cache",
    "token expired, signature mismatch: request rejected",
]
"""Messages with no secret: what a reader needs from them must survive."""
