// Hostile programs under the bubblewrap sandbox (eval/sandbox.h): each tries to do harm outside it,
// exits 0 only if it believes it succeeded, and must come back as a failed result, with the harm
// checked from outside: the victim files untouched, the listener never connected to, no process
// left behind, the harness and its terminal unchanged. Short wall limits keep them fast.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "eval/sandbox.h"

using namespace h1bkv;
namespace fs = std::filesystem;

namespace {

#define NEED_PYTHON() \
  if (python3_path().empty()) GTEST_SKIP() << "python3 not found under /usr on PATH"

SandboxLimits fast_limits() {
  SandboxLimits l;
  l.wall_seconds = 3.0;
  return l;
}

std::string read_text(const fs::path& p) {
  std::stringstream ss;
  ss << std::ifstream(p, std::ios::binary).rdbuf();
  return ss.str();
}

// A stand-in repository with a model file, made in the current directory (the build tree, inside
// the real repository) and removed afterwards. Anyone may read and write it, so what keeps the
// program out is that it cannot see it, not that its uid lacks permission.
struct Victim {
  fs::path dir;
  std::string canary;
  Victim() {
    std::string tmpl = (fs::current_path() / "h1bkv-victim-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    dir = tmpl;
    canary = "canary-" + std::to_string(getpid()) + "-" + dir.filename().string();
    std::ofstream(dir / "model.gguf") << "GGUF weights";
    std::ofstream(dir / "delete_me.txt") << "keep";
    std::ofstream(dir / "canary.txt") << canary;
    fs::permissions(dir, fs::perms::all);
    for (const char* f : {"model.gguf", "delete_me.txt", "canary.txt"})
      fs::permissions(dir / f, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                   fs::perms::group_write | fs::perms::others_read | fs::perms::others_write);
  }
  ~Victim() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  // the files as the test made them, and nothing else
  void expect_untouched() const {
    EXPECT_EQ(read_text(dir / "model.gguf"), "GGUF weights");
    EXPECT_EQ(read_text(dir / "delete_me.txt"), "keep");
    EXPECT_EQ(read_text(dir / "canary.txt"), canary);
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir)) n += e.is_regular_file() ? 1 : 100;
    EXPECT_EQ(n, 3u);
  }
  std::string py() const { return "'" + dir.string() + "'"; }  // a Python literal (no quotes in it)
};

// Host processes whose command line contains `marker` (a program's children exec `sleep MARKER`).
int processes_with(const std::string& marker) {
  int n = 0;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = read_text(e.path() / "cmdline");
    for (char& c : cmdline) c = c == '\0' ? ' ' : c;
    if (cmdline.find(marker) != std::string::npos) ++n;
  }
  return n;
}

void expect_contained(const SandboxResult& r) {
  EXPECT_TRUE(r.bubblewrap);
  EXPECT_FALSE(r.passed()) << r.output;
}

}  // namespace

TEST(SandboxHostile, WritingInTheRepositoryOrNextToTheModelFails) {
  NEED_PYTHON();
  Victim v;
  expect_contained(run_python("open(" + v.py() + " + '/model.gguf', 'wb').write(b'overwritten')\n", fast_limits()));
  expect_contained(run_python("open(" + v.py() + " + '/new.py', 'w').write('import os')\n", fast_limits()));
  // by a relative path, and by making the directories first
  expect_contained(run_python("open('../" + v.dir.filename().string() + "/model.gguf', 'w').write('x')\n", fast_limits()));
  expect_contained(run_python(
      "import os\nos.makedirs(" + v.py() + ", exist_ok=True)\nopen(" + v.py() + " + '/model.gguf', 'w').write('x')\n",
      fast_limits()));
  v.expect_untouched();
}

TEST(SandboxHostile, DeletingOutsideFails) {
  NEED_PYTHON();
  Victim v;
  expect_contained(run_python("import os\nos.remove(" + v.py() + " + '/delete_me.txt')\n", fast_limits()));
  expect_contained(run_python("import shutil\nshutil.rmtree(" + v.py() + ")\n", fast_limits()));
  v.expect_untouched();
}

TEST(SandboxHostile, ReadingACanaryOutsideFails) {
  NEED_PYTHON();
  Victim v;
  ASSERT_EQ(read_text(v.dir / "canary.txt"), v.canary);  // readable from here
  // directly, and through the /proc links of the harness and of the sandbox's first process
  const std::string pid = std::to_string(getpid());
  const SandboxResult r = run_python(
      "import sys\nfound = False\n"
      "for root in ['', '/proc/" + pid + "/root', '/proc/1/root', '/proc/" + pid + "/cwd/..']:\n"
      "    try:\n        print(open(root + " + v.py() + " + '/canary.txt').read())\n        found = True\n"
      "    except OSError as e:\n        print(e, file=sys.stderr)\n"
      "sys.exit(0 if found else 1)\n",
      fast_limits());
  expect_contained(r);
  EXPECT_EQ(r.output.find(v.canary), std::string::npos) << r.output;
  v.expect_untouched();
}

TEST(SandboxHostile, ConnectingToALocalListenerFails) {
  NEED_PYTHON();
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, (sockaddr*)&a, sizeof a), 0);
  ASSERT_EQ(listen(fd, 4), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(getsockname(fd, (sockaddr*)&a, &len), 0);
  const std::string port = std::to_string(ntohs(a.sin_port));
  const SandboxResult r = run_python(
      "import socket\ns = socket.create_connection(('127.0.0.1', " + port + "), timeout=1)\ns.sendall(b'hi')\n"
      "print('connected')\n",
      fast_limits());
  expect_contained(r);
  EXPECT_TRUE(r.network_isolated);
  EXPECT_EQ(r.output.find("connected"), std::string::npos);
  EXPECT_LT(accept(fd, nullptr, nullptr), 0);  // nothing queued
  EXPECT_EQ(errno, EAGAIN);
  // the control: the same listener takes a connection from the harness
  const int c = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(connect(c, (sockaddr*)&a, sizeof a), 0);
  const int accepted = accept(fd, nullptr, nullptr);
  EXPECT_GE(accepted, 0);
  close(accepted), close(c), close(fd);
}

TEST(SandboxHostile, ForkBombIsContained) {
  NEED_PYTHON();
  SandboxLimits l = fast_limits();
  l.wall_seconds = 2.0;
  // counts the processes it gets: fewer than RLIMIT_NPROC, each left sleeping, all gone afterwards
  const std::string marker = "3600." + std::to_string(getpid()) + "1";
  SandboxResult r = run_python(
      "import os\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
      "            os.execv('/usr/bin/sleep', ['sleep', '" + marker + "'])\n        n += 1\n"
      "except OSError as e:\n    print('forks', n, e)\n    raise SystemExit(1)\n",
      l);
  expect_contained(r);
  const size_t at = r.output.find("forks ");
  ASSERT_NE(at, std::string::npos) << r.output;
  EXPECT_LT(std::stoi(r.output.substr(at + 6)), l.processes) << r.output;
  EXPECT_EQ(processes_with("sleep " + marker), 0);
  // the classic: every process forks forever, until the deadline
  l.wall_seconds = 1.0;
  r = run_python("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", l);
  expect_contained(r);
  EXPECT_TRUE(r.timed_out);
  EXPECT_TRUE(run_python("print('ok')\n").passed());  // the harness can still start programs
}

TEST(SandboxHostile, AllocatingTenGigabytesFails) {
  NEED_PYTHON();
  SandboxResult r = run_python("x = bytearray(10 << 30)\nx[-1] = 1\n", fast_limits());
  expect_contained(r);
  EXPECT_NE(r.output.find("MemoryError"), std::string::npos) << r.output;
  // in memory-backed files instead: the tmpfs is capped
  r = run_python("for i in range(10 << 10):\n    open(f'/tmp/f{i}', 'wb').write(b'x' * (1 << 20))\n", fast_limits());
  expect_contained(r);
  EXPECT_NE(r.output.find("No space left on device"), std::string::npos) << r.output;
}

TEST(SandboxHostile, PrintingAGigabyteIsKilled) {
  NEED_PYTHON();
  const SandboxLimits l = fast_limits();
  const SandboxResult r = run_python(
      "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1 << 10):\n    sys.stdout.write(chunk)\n", l);
  expect_contained(r);
  EXPECT_TRUE(r.output_killed);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_EQ(r.output.size(), l.max_output);
  EXPECT_TRUE(r.output_truncated);
}

TEST(SandboxHostile, SleepingForeverIsKilledWithItsDaemons) {
  NEED_PYTHON();
  SandboxLimits l = fast_limits();
  l.wall_seconds = 1.0;
  // a child in a session of its own (a daemon), and the program itself sleeping
  const std::string marker = "3600." + std::to_string(getpid()) + "2";
  const SandboxResult r = run_python(
      "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
      "        os.execv('/usr/bin/sleep', ['sleep', '" + marker + "'])\n    os._exit(0)\n"
      "time.sleep(10 ** 9)\n",
      l);
  expect_contained(r);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_EQ(processes_with("sleep " + marker), 0);
}

TEST(SandboxHostile, KillingItsParentOrTheHarnessFails) {
  NEED_PYTHON();
  const std::string pid = std::to_string(getpid());
  // its parent (the sandbox's init): still there afterwards
  expect_contained(run_python(
      "import os, time\nppid = os.getppid()\nos.kill(ppid, 9)\ntime.sleep(0.2)\nassert os.getppid() != ppid, 'alive'\n",
      fast_limits()));
  // the harness by pid and by process group, then everything it may signal
  expect_contained(run_python("import os\nos.kill(" + pid + ", 9)\n", fast_limits()));
  expect_contained(run_python("import os\nos.killpg(" + std::to_string(getpgrp()) + ", 9)\n", fast_limits()));
  expect_contained(run_python("import os\nos.kill(-1, 9)\nos.kill(" + pid + ", 0)\n", fast_limits()));
  EXPECT_TRUE(run_python("print('ok')\n").passed());  // still here, still working
}

// The harness runs in a terminal (a pty made its controlling terminal in a forked helper, as a
// shell would); the program tries to write to it, change its modes and push input into it.
TEST(SandboxHostile, ChangingTheTerminalFails) {
  NEED_PYTHON();
  const int master = posix_openpt(O_RDWR | O_NOCTTY);
  ASSERT_GE(master, 0);
  ASSERT_EQ(grantpt(master), 0);
  ASSERT_EQ(unlockpt(master), 0);
  const std::string slave_name = ptsname(master);
  const std::string program =
      "import os, termios, fcntl\nhit = []\n"
      "for target in ['/dev/tty', 0, 1, 2]:\n"
      "    try:\n"
      "        fd = os.open(target, os.O_RDWR) if isinstance(target, str) else target\n"
      "        a = termios.tcgetattr(fd)\n        a[3] &= ~termios.ECHO\n"
      "        termios.tcsetattr(fd, termios.TCSANOW, a)\n"
      "        os.write(fd, b'\\x1b[2J\\x1b]0;pwned\\x07')\n"
      "        fcntl.ioctl(fd, termios.TIOCSTI, b'x')\n        hit.append(target)\n"
      "    except OSError as e:\n        print(target, e)\n"
      "assert hit, 'no terminal'\n";
  const pid_t helper = fork();
  ASSERT_GE(helper, 0);
  if (helper == 0) {
    // exit codes: 0 contained, 1 setup failed, 2 the program passed, 3 the modes changed,
    // 4 output reached the terminal, 5 input was pushed into it
    if (setsid() < 0) _exit(1);
    const int slave = open(slave_name.c_str(), O_RDWR);  // the session's controlling terminal
    if (slave < 0 || dup2(slave, 0) < 0 || dup2(slave, 1) < 0 || dup2(slave, 2) < 0) _exit(1);
    termios before{}, after{};
    if (open("/dev/tty", O_RDWR) < 0 || tcgetattr(slave, &before) != 0) _exit(1);
    before.c_lflag &= ~ICANON;  // reads return what is queued at once
    before.c_cc[VMIN] = 0;
    before.c_cc[VTIME] = 0;
    if (tcsetattr(slave, TCSANOW, &before) != 0 || tcgetattr(slave, &before) != 0) _exit(1);
    bool passed = true;
    try {
      passed = run_python(program, fast_limits()).passed();
    } catch (...) {
      _exit(1);
    }
    if (tcgetattr(slave, &after) != 0) _exit(1);
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    char buf[256];
    _exit(passed                                ? 2
          : after.c_lflag != before.c_lflag     ? 3
          : read(master, buf, sizeof buf) > 0   ? 4
          : read(slave, buf, sizeof buf) > 0    ? 5
                                                : 0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(helper, &status, 0), helper);
  close(master);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}
