#include "eval/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "util/error.h"

namespace h1bkv {

namespace {

using Clock = std::chrono::steady_clock;

// The executables `name` on PATH, in PATH order.
std::vector<std::string> find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  const std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= dirs.size()) {
    const size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::string dir = dirs.substr(start, end - start);
    const std::string p = (dir.empty() ? "." : dir) + "/" + name;
    if (access(p.c_str(), X_OK) == 0) out.push_back(p);
    start = end + 1;
  }
  return out;
}

void write_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= (size_t)w;
  }
}

void set_limit(int resource, rlim_t soft, rlim_t hard) {
  const rlimit r{soft, hard};
  setrlimit(resource, &r);
}

struct ChildSpec {
  std::vector<std::string> argv, envp;
  std::string cwd;
  const SandboxLimits* limits = nullptr;  // null: no limits, no isolation (resolving python3)
  // argv runs bwrap: a root harness drops to its own uid, program_fd becomes fd 4 (--file) and
  // info_fd fd 5 (--info-fd, written once the sandbox is set up)
  bool bubblewrap = false;
  int program_fd = -1, info_fd = -1;
};

// Reports errno on fd 3 (close-on-exec: the parent reads it only when exec did not happen).
// Negative: the switch to the sandbox's uid failed.
[[noreturn]] void child_fail(int e) {
  write_all(3, &e, sizeof e);
  _exit(127);
}

// In the child after fork: only system calls from here on (the parent may have threads).
// Reports on status_fd: 'N' or 'n' for network isolation ('b': bubblewrap's), then errno if exec fails.
[[noreturn]] void child_main(const ChildSpec& spec, char* const* argv, char* const* envp, int out_fd,
                             int status_fd) {
  setsid();  // own session (no controlling terminal) and process group (killed as one)
  // move every inherited end above the descriptors set up below (the parent may run with 0-2 closed)
  out_fd = fcntl(out_fd, F_DUPFD_CLOEXEC, 10);
  status_fd = fcntl(status_fd, F_DUPFD_CLOEXEC, 10);
  const int program_fd = spec.program_fd >= 0 ? fcntl(spec.program_fd, F_DUPFD_CLOEXEC, 10) : -1;
  const int info_fd = spec.info_fd >= 0 ? fcntl(spec.info_fd, F_DUPFD_CLOEXEC, 10) : -1;
  if (out_fd < 0 || status_fd < 0 || (program_fd < 0) != (spec.program_fd < 0) ||
      (info_fd < 0) != (spec.info_fd < 0))
    _exit(127);
  char net = spec.bubblewrap ? 'b' : 'n';
  if (!spec.bubblewrap && spec.limits) {
    if (unshare(CLONE_NEWNET) == 0 || unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0) net = 'N';
  }
  write_all(status_fd, &net, 1);
  const int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) dup2(devnull, 0);
  dup2(out_fd, 1);
  dup2(out_fd, 2);
  dup3(status_fd, 3, O_CLOEXEC);
  if (program_fd >= 0) dup2(program_fd, 4);  // dup2 clears close-on-exec: bwrap reads these
  if (info_fd >= 0) dup2(info_fd, 5);
  close_range(spec.bubblewrap ? 6 : 4, ~0U, 0);
  if (!spec.cwd.empty() && chdir(spec.cwd.c_str()) != 0) child_fail(errno);
  if (spec.bubblewrap && geteuid() == 0) {
    const uid_t id = kSandboxUidBase + (uid_t)getpid();
    if (setgroups(0, nullptr) != 0 || setresgid(id, id, id) != 0 || setresuid(id, id, id) != 0)
      child_fail(-errno);  // negative: the uid switch failed, not exec
  }
  if (const SandboxLimits* l = spec.limits) {
    set_limit(RLIMIT_CPU, (rlim_t)l->cpu_seconds, (rlim_t)l->cpu_seconds + 1);
    set_limit(RLIMIT_AS, (rlim_t)l->memory_bytes, (rlim_t)l->memory_bytes);
    set_limit(RLIMIT_FSIZE, (rlim_t)l->file_bytes, (rlim_t)l->file_bytes);
    set_limit(RLIMIT_NPROC, (rlim_t)l->processes, (rlim_t)l->processes);
    set_limit(RLIMIT_CORE, 0, 0);
  }
  execve(argv[0], argv, envp);
  child_fail(errno);
}

// Reads what is there from fd (at most one buffer); false at end of file or on an error.
bool read_some(int fd, SandboxResult& r, size_t max_output, int64_t& total) {
  char buf[8192];
  const ssize_t got = read(fd, buf, sizeof buf);
  if (got < 0 && errno == EINTR) return true;
  if (got <= 0) return false;
  total += got;
  const size_t keep = std::min((size_t)got, max_output - std::min(max_output, r.output.size()));
  r.output.append(buf, keep);
  if (keep < (size_t)got) r.output_truncated = true;
  return true;
}

// bwrap's side of a run: the JSON it writes on --info-fd once the sandbox is set up, and a pidfd
// of the sandbox's init (its "child-pid"). Killing the init ends every process in the sandbox's
// PID namespace before bwrap exits; killing bwrap would leave that to happen after we return.
struct BubblewrapWatch {
  int info_fd = -1;  // read end, non-blocking
  std::string info;
  int init_pidfd = -1;
  ~BubblewrapWatch() {
    if (init_pidfd >= 0) close(init_pidfd);
  }
  bool complete() const { return info.find('}') != std::string::npos; }

  // Reads the info; once complete, opens a pidfd of the init and keeps it if the init's parent is
  // still bwrap (`bwrap_pid`, not yet reaped by us, so the pid was not reused; 0: reaped, no pidfd).
  void poll_info(pid_t bwrap_pid) {
    char buf[512];
    ssize_t got;
    while (!complete() && (got = read(info_fd, buf, sizeof buf)) > 0) info.append(buf, (size_t)got);
    const size_t at = info.find("\"child-pid\":");
    if (!complete() || at == std::string::npos || init_pidfd >= 0 || bwrap_pid <= 0) return;
    const long init = std::strtol(info.c_str() + at + 12, nullptr, 10);
    if (init <= 0) return;
    init_pidfd = (int)syscall(SYS_pidfd_open, (pid_t)init, 0);
    std::ifstream stat("/proc/" + std::to_string(init) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const size_t comm_end = text.rfind(')');
    long ppid = 0;
    if (comm_end != std::string::npos && comm_end + 4 < text.size()) ppid = std::strtol(text.c_str() + comm_end + 4, nullptr, 10);
    if (init_pidfd >= 0 && ppid != bwrap_pid) {
      close(init_pidfd);
      init_pidfd = -1;
    }
  }
};

// Runs spec to completion (or the deadline) and collects its output.
SandboxResult run_child(const ChildSpec& spec, double wall_seconds, size_t max_output,
                        int64_t output_kill_bytes, BubblewrapWatch* bw = nullptr) {
  std::vector<char*> argv, envp;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  for (const auto& e : spec.envp) envp.push_back(const_cast<char*>(e.c_str()));
  argv.push_back(nullptr);
  envp.push_back(nullptr);

  int out[2], status[2];
  check(pipe2(out, O_CLOEXEC) == 0, std::string("sandbox: pipe failed: ") + std::strerror(errno));
  if (pipe2(status, O_CLOEXEC) != 0) {
    close(out[0]), close(out[1]);
    throw Error(std::string("sandbox: pipe failed: ") + std::strerror(errno));
  }
  const auto t0 = Clock::now();
  const pid_t pid = fork();
  if (pid == 0) child_main(spec, argv.data(), envp.data(), out[1], status[1]);
  close(out[1]);
  close(status[1]);
  if (pid < 0) {
    close(out[0]), close(status[0]);
    throw Error(std::string("sandbox: fork failed: ") + std::strerror(errno));
  }

  SandboxResult r;
  const auto deadline = t0 + std::chrono::duration<double>(wall_seconds);
  auto ms_left = [&] {
    return (int)std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
  };
  bool out_open = true;
  int wstatus = 0;
  rusage usage{};
  bool reaped = false;
  int64_t written = 0;
  while (!reaped) {
    pollfd p[2] = {{out_open ? out[0] : -1, POLLIN, 0}, {bw && !bw->complete() ? bw->info_fd : -1, POLLIN, 0}};
    if (poll(p, 2, std::min(ms_left(), out_open ? 50 : 2)) > 0) {
      if (p[0].revents) out_open = read_some(out[0], r, max_output, written);
      if (p[1].revents) bw->poll_info(pid);
    }
    if (wait4(pid, &wstatus, WNOHANG, &usage) == pid) reaped = true;
    const bool too_much = written > output_kill_bytes;
    if (!reaped && (too_much || Clock::now() >= deadline)) {
      (too_much ? r.output_killed : r.timed_out) = true;
      if (bw && bw->init_pidfd >= 0) {
        // bwrap exits after its init, which exits after every other process in its namespace
        syscall(SYS_pidfd_send_signal, bw->init_pidfd, SIGKILL, nullptr, 0);
        for (int i = 0; i < 500 && !reaped; ++i) {  // 5 s, then bwrap is killed as below
          reaped = wait4(pid, &wstatus, WNOHANG, &usage) == pid;
          if (!reaped) usleep(10000);
        }
      }
      if (!reaped) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        while (wait4(pid, &wstatus, 0, &usage) < 0 && errno == EINTR) {}
        reaped = true;
      }
    }
  }
  if (bw) bw->poll_info(0);  // what came after the last poll
  kill(-pid, SIGKILL);  // grandchildren left in the group
  // the rest of the output already written (bounded: the pipe's buffer)
  if (out_open) {
    fcntl(out[0], F_SETFL, fcntl(out[0], F_GETFL) | O_NONBLOCK);
    while (read_some(out[0], r, max_output, written)) {}
  }
  close(out[0]);
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.max_rss_kb = usage.ru_maxrss;
  if (WIFEXITED(wstatus)) r.exit_code = WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) r.signal = WTERMSIG(wstatus);

  char net = 'n';
  int exec_errno = 0;
  const bool got_net = read(status[0], &net, 1) == 1;
  const bool exec_failed = read(status[0], &exec_errno, sizeof exec_errno) == (ssize_t)sizeof exec_errno;
  close(status[0]);
  r.network_isolated = got_net && net == 'N';
  check(!exec_failed || exec_errno >= 0, "sandbox: cannot start bwrap as a uid of its own (" +
                                             std::to_string(kSandboxUidBase) + " + pid): " + std::strerror(-exec_errno));
  check(!exec_failed, "sandbox: cannot run " + spec.argv[0] + ": " + std::strerror(exec_errno));
  return r;
}

// sys.executable of `candidate`, resolved to a real path; "" when it does not run.
std::string python_executable(const std::string& candidate) {
  ChildSpec spec;
  spec.argv = {candidate, "-c", "import sys; sys.stdout.write(sys.executable)"};
  for (char** e = environ; *e; ++e) spec.envp.push_back(*e);  // a wrapper may need its variables
  try {
    const SandboxResult r = run_child(spec, 30.0, 4096, int64_t(1) << 20);
    if (!r.passed() || r.output.empty() || r.output[0] != '/') return "";
    std::error_code ec;
    const std::string real = std::filesystem::canonical(r.output, ec).string();
    return ec ? "" : real;
  } catch (const Error&) {
    return "";
  }
}

std::string resolve_python3() {
  for (const std::string& candidate : find_on_path("python3")) {
    const std::string exe = python_executable(candidate);
    if (exe.rfind("/usr/", 0) == 0) return exe;
  }
  return "";
}

// Closes the descriptors it holds.
struct Fds {
  std::vector<int> fds;
  ~Fds() {
    for (int fd : fds) close(fd);
  }
};

// bwrap's arguments up to the command (see sandbox.h).
std::vector<std::string> bubblewrap_args(const std::string& bwrap, const SandboxLimits& l) {
  std::vector<std::string> a = {bwrap, "--unshare-all", "--unshare-user", "--disable-userns",
                                "--uid", "65534", "--gid", "65534", "--hostname", "sandbox",
                                "--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"};
  // merged-/usr systems link these into /usr; older ones have directories
  for (const char* d : {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}) {
    std::error_code ec;
    const auto st = std::filesystem::symlink_status(d, ec);
    if (ec) continue;
    if (std::filesystem::is_symlink(st)) {
      const std::string target = std::filesystem::read_symlink(d, ec).string();
      if (!ec) a.insert(a.end(), {"--symlink", target, d});
    } else if (std::filesystem::is_directory(st)) {
      a.insert(a.end(), {"--ro-bind", d, d});
    }
  }
  a.insert(a.end(), {"--proc", "/proc", "--dev", "/dev", "--size", std::to_string(l.tmpfs_bytes),
                     "--tmpfs", "/tmp", "--file", "4", "/tmp/program.py", "--info-fd", "5",
                     // bwrap leaves / and /dev writable tmpfs: only /tmp stays writable
                     "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp"});
  return a;
}

// Runs program inside bubblewrap; throws Error when bwrap does not set the sandbox up.
SandboxResult run_in_bubblewrap(const std::string& python, const std::string& program,
                                const SandboxLimits& limits) {
  const std::vector<std::string> bwrap = find_on_path("bwrap");
  check(!bwrap.empty(), "sandbox: bwrap not found on PATH (install the bubblewrap package)");
  Fds fds;
  const int program_fd = memfd_create("h1bkv-program", MFD_CLOEXEC);
  check(program_fd >= 0, std::string("sandbox: memfd_create failed: ") + std::strerror(errno));
  fds.fds.push_back(program_fd);
  write_all(program_fd, program.data(), program.size());
  check(lseek(program_fd, 0, SEEK_END) == (off_t)program.size() && lseek(program_fd, 0, SEEK_SET) == 0,
        "sandbox: cannot write the program to a memfd");
  int info[2];
  check(pipe2(info, O_CLOEXEC | O_NONBLOCK) == 0, std::string("sandbox: pipe failed: ") + std::strerror(errno));
  fds.fds.insert(fds.fds.end(), {info[0], info[1]});
  BubblewrapWatch watch;
  watch.info_fd = info[0];

  ChildSpec spec;
  spec.argv = bubblewrap_args(bwrap[0], limits);
  spec.argv.insert(spec.argv.end(), {"--", python, "-I", "-S", "-B", "program.py"});
  spec.envp = {"PATH=/usr/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp", "LANG=C.UTF-8"};
  spec.cwd = "/";  // bwrap starts from a directory its uid can reach
  spec.limits = &limits;
  spec.bubblewrap = true;
  spec.program_fd = program_fd;
  spec.info_fd = info[1];
  SandboxResult r = run_child(spec, limits.wall_seconds, limits.max_output, limits.output_kill_bytes, &watch);
  r.bubblewrap = !watch.info.empty();  // the JSON bwrap writes after setting up
  if (!r.bubblewrap) {
    const std::string first_line = r.output.substr(0, r.output.find('\n'));
    throw Error("sandbox: bubblewrap did not set up the sandbox: " +
                (r.timed_out ? std::string("timed out") : first_line.empty() ? "no message" : first_line));
  }
  r.network_isolated = true;
  if (r.exit_code > 128 && r.exit_code <= 128 + 64) {  // bwrap's way of passing on a signal
    r.signal = r.exit_code - 128;
    r.exit_code = -1;
  }
  return r;
}

// A plain child in a fresh host temp directory (the --unsafe-exec mode).
SandboxResult run_unsandboxed(const std::string& python, const std::string& program,
                              const SandboxLimits& limits) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "h1bkv-sandbox-XXXXXX").string();
  check(mkdtemp(tmpl.data()) != nullptr, std::string("sandbox: mkdtemp failed: ") + std::strerror(errno));
  const std::string dir = tmpl;
  struct RemoveDir {
    std::string d;
    ~RemoveDir() { std::error_code ec; std::filesystem::remove_all(d, ec); }
  } cleanup{dir};
  {
    std::ofstream f(dir + "/program.py", std::ios::binary);
    f << program;
    check(f.good(), "sandbox: cannot write " + dir + "/program.py");
  }
  ChildSpec spec;
  spec.argv = {python, "-I", "-S", "-B", "program.py"};
  spec.envp = {"PATH=/usr/bin:/bin", "HOME=" + dir, "TMPDIR=" + dir, "LANG=C.UTF-8"};
  spec.cwd = dir;
  spec.limits = &limits;
  return run_child(spec, limits.wall_seconds, limits.max_output, limits.output_kill_bytes);
}

std::string probe_bubblewrap() {
  const std::string& python = python3_path();
  if (python.empty()) return "no python3 under /usr on PATH";
  try {
    SandboxLimits l;
    l.wall_seconds = 30.0;  // a loaded machine
    const SandboxResult r = run_in_bubblewrap(python, "print('ok')\n", l);
    if (r.passed() && r.output == "ok\n") return "";
    return "a trivial program failed inside bwrap: " + r.output.substr(0, r.output.find('\n'));
  } catch (const Error& e) {
    const std::string m = e.what();
    return m.rfind("sandbox: ", 0) == 0 ? m.substr(9) : m;
  }
}

}  // namespace

const std::string& python3_path() {
  static const std::string path = resolve_python3();
  return path;
}

const std::string& bubblewrap_problem() {
  static const std::string problem = probe_bubblewrap();
  return problem;
}

SandboxResult run_python(const std::string& program, const SandboxLimits& limits) {
  const std::string& python = python3_path();
  check(!python.empty(), "sandbox: no python3 under /usr on PATH");
  if (limits.unsafe_no_bubblewrap) return run_unsandboxed(python, program, limits);
  check(bubblewrap_problem().empty(), "sandbox: bubblewrap cannot start: " + bubblewrap_problem());
  return run_in_bubblewrap(python, program, limits);
}

}  // namespace h1bkv
