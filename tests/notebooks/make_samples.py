"""Make the sample submissions of the demo assignment from its student notebook.

usage: python make_samples.py STUDENT_NOTEBOOK OUT_DIR

Each sample is the student notebook with the three answer cells filled in. Expected
scores (q1: 1 point, q2: 2, q3: 2; see EXPECTED.md): correct 5, partial 3, error 4. The
hostile samples try to escape or exhaust the sandbox while answering correctly otherwise.
"""
import copy
import json
import os
import sys

Q1 = "answer = sum(range(1, 11))"
Q2 = "def square(x):\n    return x * x"
Q3 = "def vowels(s):\n    return sum(c in 'aeiou' for c in s.lower())"

# Cell sources to put before the q1 answer (the answers themselves stay correct).
HOSTILE = {
    "infinite_loop": "while True:\n    pass",
    "sleep": "import time\ntime.sleep(10000)",
    "memory_bomb": "hog = []\nwhile True:\n    hog.append(bytearray(50 * 1024 * 1024))",
    "fork_bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
    "disk_fill": (
        "import os\n"
        "for d in ['.', '/tmp', os.path.expanduser('~')]:\n"
        "    try:\n"
        "        with open(os.path.join(d, 'fill.bin'), 'wb') as f:\n"
        "            while True:\n"
        "                f.write(b'\\0' * (1 << 20))\n"
        "    except OSError as e:\n"
        "        print('disk full in', d, e)"
    ),
    "stdout_flood": "import sys\nline = 'x' * 1023 + '\\n'\nfor _ in range(100 * 1024):\n    sys.stdout.write(line)",
    "network": (
        "import socket\n"
        "reached = []\n"
        "for host, port in [('1.1.1.1', 53), ('8.8.8.8', 443), ('127.0.0.1', 22)]:\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=3).close()\n"
        "        reached.append(host)\n"
        "    except OSError as e:\n"
        "        print('blocked', host, e)\n"
        "print('NETWORK_REACHED', reached)"
    ),
    "kill_kernel": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
    "sys_exit": "import sys\nsys.exit(1)",
    "read_files": (
        "import os\n"
        "leaked = []\n"
        "for p in ['/etc/shadow', '/var/run/docker.sock', '/root/.bash_history', '/proc/1/root/etc/shadow']:\n"
        "    try:\n"
        "        print('READ', p, open(p, 'rb').read(80))\n"
        "        leaked.append(p)\n"
        "    except OSError as e:\n"
        "        print('DENIED', p, e)\n"
        "for d in ['/autograder', '..', '/', '/home', '/tmp']:\n"
        "    try:\n"
        "        print('LIST', d, sorted(os.listdir(d))[:20])\n"
        "    except OSError as e:\n"
        "        print('DENIED', d, e)"
    ),
}


# Where an escape attempt can be observed, q1 is only right if the attempt failed, so the
# score shows whether the sandbox held (5 points: it held; 4: it did not).
ESCAPED = {
    "network": {"answer =": "answer = sum(range(1, 11)) if not reached else -1"},
    "read_files": {"answer =": "answer = sum(range(1, 11)) if not leaked else -1"},
}


def code(src):
    return {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": src}


def fill(student, answers, before=None):
    nb = copy.deepcopy(student)
    for cell in nb["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for key, answer in answers.items():
            if cell["cell_type"] == "code" and src.startswith(key):
                cell["source"] = answer
    if before is not None:
        first = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
                     and "".join(c["source"]).startswith("answer"))
        nb["cells"].insert(first, code(before))
    for i, cell in enumerate(nb["cells"]):
        cell["id"] = f"s{i:02d}"
    return nb


def main(student_path, out_dir):
    student = json.load(open(student_path))
    right = {"answer =": Q1, "def square": Q2, "def vowels": Q3}
    samples = {
        "correct": fill(student, right),
        # q2 wrong in every case: 1 + 0 + 2 = 3 points.
        "partial": fill(student, {**right, "def square": "def square(x):\n    return x + 1"}),
        # q1's cell raises; otter grades the rest: 0 + 2 + 2 = 4 points.
        "error": fill(student, {**right, "answer =": "answer = 1 / 0"}),
    }
    for name, before in HOSTILE.items():
        samples[name] = fill(student, {**right, **ESCAPED.get(name, {})}, before)
    os.makedirs(out_dir, exist_ok=True)
    for name, nb in samples.items():
        with open(os.path.join(out_dir, f"{name}.ipynb"), "w") as f:
            json.dump(nb, f, indent=1)
    print(f"wrote {len(samples)} samples to {out_dir}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
