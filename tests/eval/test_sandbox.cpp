#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "eval/sandbox.h"

using namespace h1bkv;

#define NEED_PYTHON() \
  if (python3_path().empty()) GTEST_SKIP() << "python3 not found on PATH"

TEST(Sandbox, ExitStatusAndOutput) {
  NEED_PYTHON();
  SandboxResult r = run_python("import sys\nprint('hello', flush=True)\nprint('err', file=sys.stderr)\n");
  EXPECT_TRUE(r.passed());
  EXPECT_EQ(r.output, "hello\nerr\n");
  r = run_python("import sys\nsys.exit(3)\n");
  EXPECT_FALSE(r.passed());
  EXPECT_EQ(r.exit_code, 3);
  r = run_python("assert 1 == 2, 'nope'\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("AssertionError: nope"), std::string::npos);
  // stdin is /dev/null: input() sees end of file at once
  r = run_python("try:\n    input()\nexcept EOFError:\n    print('eof')\n");
  EXPECT_EQ(r.output, "eof\n");
}

TEST(Sandbox, RunsInAFreshDirectoryAndCleansUp) {
  NEED_PYTHON();
  const SandboxResult r = run_python("import os\nprint(os.getcwd())\nprint(sorted(os.listdir('.')))\n");
  ASSERT_TRUE(r.passed()) << r.output;
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

TEST(Sandbox, NoNetworkWhenIsolated) {
  NEED_PYTHON();
  // a listener on the host's loopback: reachable only without isolation
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, (sockaddr*)&a, sizeof a), 0);
  ASSERT_EQ(listen(fd, 4), 0);
  socklen_t len = sizeof a;
  getsockname(fd, (sockaddr*)&a, &len);
  const std::string program = "import socket\ns = socket.create_connection(('127.0.0.1', " +
                              std::to_string(ntohs(a.sin_port)) + "), timeout=2)\nprint('connected')\n";
  SandboxLimits open_net;
  open_net.isolate_network = false;
  const SandboxResult reachable = run_python(program, open_net);
  EXPECT_TRUE(reachable.passed()) << reachable.output;
  EXPECT_FALSE(reachable.network_isolated);
  const SandboxResult r = run_python(program);
  close(fd);
  if (!r.network_isolated) GTEST_SKIP() << "network namespaces not available here (not root, no user namespaces)";
  EXPECT_FALSE(r.passed());
  EXPECT_EQ(r.output.find("connected"), std::string::npos);
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
