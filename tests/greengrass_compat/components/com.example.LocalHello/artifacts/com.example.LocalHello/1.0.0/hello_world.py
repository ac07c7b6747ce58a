import sys
import time

message = f"Hello, {sys.argv[1]}!"
print(message, flush=True)
# Keep running, as a long-lived component does.
while True:
    time.sleep(5)
