"""Child processes that never outlive their parent (snn_toolchain/processes.py): a worker whose parent
died before it asked for the parent-death signal exits at once.
"""

from __future__ import annotations

import os
import subprocess
import sys


def test_a_worker_whose_parent_died_before_it_started_exits_at_once(tmp_path):
    # the parent may die before a new worker has asked for the parent-death signal: the worker's
    # check right after asking finds itself adopted and exits (a fork stands in for the spawn)
    script = ("import os\n"
              "from snn_toolchain.processes import die_with_parent\n"
              "pid = os.fork()\n"
              "if pid == 0:\n"
              "    die_with_parent(os.getppid() + 1)   # not its parent: as if adopted by init\n"
              "    os._exit(0)\n"
              "print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n"
              "pid = os.fork()\n"
              "if pid == 0:\n"
              "    die_with_parent(os.getppid())\n"
              "    os._exit(0)\n"
              "print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.stdout.split() == ["1", "0"], done.stderr
