import sys
import time

if sys.argv[1] == "--self-test":
    raise SystemExit("self-test failed: cannot reach the sensor")
print(f"Hello, {sys.argv[1]}! (1.1.0)", flush=True)
while True:
    time.sleep(5)
