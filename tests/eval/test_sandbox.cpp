#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <filesystem>

#include "eval/sandbox.h"

using namespace h1bkv;

#define NEED_PYTHON() \
  if (python3_path().empty()) GTEST_SKIP() << "python3 not found under /usr on PATH"

// HumanEval refuses to run without it; so do these tests (the hostile ones are in
// test_sandbox_hostile.cpp).
TEST(Sandbox, BubblewrapStartsHere) {
  NEED_PYTHON();
  EXPECT_EQ(bubblewrap_problem(), "");
  EXPECT_EQ(python3_path().rfind("/usr/", 0), 0u) << python3_path();
}

TEST(Sandbox, ExitStatusAndOutput) {
  NEED_PYTHON();
  SandboxResult r = run_python("import sys\nprint('hello', flush=True)\nprint('err', file=sys.stderr)\n");
  EXPECT_TRUE(r.passed());
  EXPECT_TRUE(r.bubblewrap);
  EXPECT_EQ(r.output, "hello\nerr\n");
  r = run_python("import sys\nsys.exit(3)\n");
  EXPECT_FALSE(r.passed());
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.signal, 0);
  r = run_python("assert 1 == 2, 'nope'\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("AssertionError: nope"), std::string::npos);
  // stdin is /dev/null: input() sees end of file at once
  r = run_python("try:\n    input()\nexcept EOFError:\n    print('eof')\n");
  EXPECT_EQ(r.output, "eof\n");
  // a signal reaches us through bwrap's exit status
  r = run_python("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n");
  EXPECT_EQ(r.signal, SIGTERM);
  EXPECT_EQ(r.exit_code, -1);
}

// What the program sees: its own /tmp holding program.py, read-only system directories, nothing
// of the host's /etc, /home, /root or /work, uid 65534, its own PID namespace.
TEST(Sandbox, SeesOnlyItsTmpAndTheSystemDirectories) {
  NEED_PYTHON();
  const SandboxResult r = run_python(
      "import os\nprint(os.getcwd(), os.listdir('.'), os.getuid(), os.getgid(), os.getppid())\n"
      "print(' '.join(sorted(os.listdir('/'))))\nprint(os.environ.get('HOME'), os.environ.get('TMPDIR'))\n");
  ASSERT_TRUE(r.passed()) << r.output;
  std::string root;  // sorted: the system directories this host has, and the sandbox's own
  for (const std::string d : {"bin", "dev", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp", "usr"}) {
    std::error_code ec;
    const bool own = d == "dev" || d == "proc" || d == "tmp";
    if (own || std::filesystem::exists(std::filesystem::symlink_status("/" + d, ec))) root += (root.empty() ? "" : " ") + d;
  }
  EXPECT_EQ(r.output, "/tmp ['program.py'] 65534 65534 1\n" + root + "\n/tmp /tmp\n");
}

TEST(Sandbox, OnlyTmpIsWritableAndItIsCapped) {
  NEED_PYTHON();
  SandboxLimits l;
  l.tmpfs_bytes = 8 << 20;
  SandboxResult r = run_python(
      "import errno\nfor p in ['/x', '/usr/x', '/dev/x', '/dev/shm/x', '/proc/x', '/tmp/x']:\n"
      "    try:\n        open(p, 'w').write('a')\n        print('wrote', p)\n"
      "    except OSError as e:\n        print(errno.errorcode[e.errno], p)\n",
      l);
  ASSERT_TRUE(r.passed()) << r.output;
  EXPECT_EQ(r.output, "EROFS /x\nEROFS /usr/x\nEROFS /dev/x\nEROFS /dev/shm/x\nENOENT /proc/x\nwrote /tmp/x\n");
  // 1 MiB at a time into the 8 MiB /tmp: full before the ninth
  r = run_python("for i in range(100):\n    open(f'/tmp/f{i}', 'wb').write(b'x' * (1 << 20))\n", l);
  EXPECT_FALSE(r.passed());
  EXPECT_NE(r.output.find("No space left on device"), std::string::npos) << r.output;
}

// --unsafe-exec's runner: a plain child in a fresh host directory, removed afterwards.
TEST(Sandbox, UnsafeModeRunsInAFreshHostDirectoryAndCleansUp) {
  NEED_PYTHON();
  SandboxLimits l;
  l.unsafe_no_bubblewrap = true;
  const SandboxResult r = run_python("import os\nprint(os.getcwd())\nprint(sorted(os.listdir('.')))\n", l);
  ASSERT_TRUE(r.passed()) << r.output;
  EXPECT_FALSE(r.bubblewrap);
  const std::string dir = r.output.substr(0, r.output.find('\n'));
  EXPECT_NE(dir.find("h1bkv-sandbox-"), std::string::npos);
  EXPECT_NE(r.output.find("['program.py']"), std::string::npos);
  EXPECT_NE(access(dir.c_str(), F_OK), 0);  // removed afterwards
}

TEST(Sandbox, OutputIsBounded) {
  NEED_PYTHON();
  SandboxLimits l;
  l.max_output = 1000;
  const SandboxResult r = run_python("print('x' * 1000000)\n", l);
  EXPECT_TRUE(r.passed());  // the program is not blocked by a full pipe
  EXPECT_EQ(r.output.size(), 1000u);
  EXPECT_TRUE(r.output_truncated);
}

TEST(Sandbox, InfiniteLoopIsKilledAtTheDeadline) {
  NEED_PYTHON();
  SandboxLimits l;
  l.wall_seconds = 1.0;
  SandboxResult r = run_python("while True:\n    pass\n", l);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_FALSE(r.passed());
  EXPECT_LT(r.seconds, 2.0);
  // sleeping (no CPU) and a child process that outlives its parent are killed too
  r = run_python("import os, time\nif os.fork() == 0:\n    time.sleep(100)\ntime.sleep(100)\n", l);
  EXPECT_TRUE(r.timed_out);
  EXPECT_LT(r.seconds, 2.0);
}

TEST(Sandbox, CpuLimitEndsABusyLoop) {
  NEED_PYTHON();
  SandboxLimits l;
  l.cpu_seconds = 1;
  l.wall_seconds = 30.0;  // CPU seconds pass slower than wall seconds on a busy machine
  const SandboxResult r = run_python("while True:\n    pass\n", l);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.signal, SIGXCPU);
}

TEST(Sandbox, MemoryBombFailsWithinTheLimit) {
  NEED_PYTHON();
  SandboxLimits l;
  l.memory_bytes = int64_t(256) << 20;
  SandboxResult r = run_python("x = bytearray(4 << 30)\n", l);
  EXPECT_FALSE(r.passed());
  EXPECT_NE(r.output.find("MemoryError"), std::string::npos) << r.output;
  r = run_python("a = []\nwhile True:\n    a.append(' ' * 10**6)\n", l);
  EXPECT_FALSE(r.passed());
  EXPECT_FALSE(r.timed_out);
  EXPECT_LT(r.max_rss_kb, 300 * 1024);
}

TEST(Sandbox, WorksWithTheParentsStdinClosed) {
  NEED_PYTHON();
  const int saved = dup(0);
  close(0);  // the next pipe may now get descriptor 0
  const SandboxResult r = run_python("print('ok')\n");
  dup2(saved, 0);
  close(saved);
  EXPECT_TRUE(r.passed()) << r.output;
  EXPECT_EQ(r.output, "ok\n");
}
