"""What the GPU check's Python programs share: their result is one JSON line on stdout (and,
with --json, the same object in a file), and they read each other's results back that way."""
import json


def emit(result, json_path=None):
    print(json.dumps(result))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f)


def load_last_json(path):
    """The last line of `path` as a JSON object; {} when it is missing or not JSON."""
    try:
        with open(path) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (OSError, IndexError, ValueError):
        return {}
