"""Development defaults: the local emulator and the key pair it accepts out of the box.

These are not secrets: they only open the emulator on 127.0.0.1, and development mode refuses any
endpoint that is not on loopback, so they can never reach production CloudMonitor.
"""

DEV_ACCESS_KEY_ID = "langflow-cms-dev"
DEV_ACCESS_KEY_SECRET = "langflow-cms-dev-secret"
DEFAULT_EMULATOR_PORT = 8765
DEFAULT_EMULATOR_ENDPOINT = f"http://127.0.0.1:{DEFAULT_EMULATOR_PORT}"
