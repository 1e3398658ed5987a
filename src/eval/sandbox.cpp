#include "eval/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "util/error.h"

namespace h1bkv {

namespace {

using Clock = std::chrono::steady_clock;

// A path to an executable `name` on PATH, or "".
std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    const size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::string dir = dirs.substr(start, end - start);
    const std::string p = (dir.empty() ? "." : dir) + "/" + name;
    if (access(p.c_str(), X_OK) == 0) return p;
    start = end + 1;
  }
  return "";
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
};

// In the child after fork: only system calls from here on (the parent may have threads).
// Reports on status_fd (close-on-exec): 'N' or 'n' for network isolation, then errno if exec fails.
[[noreturn]] void child_main(const ChildSpec& spec, char* const* argv, char* const* envp, int out_fd,
                             int status_fd) {
  setpgid(0, 0);
  // move both pipe ends above the descriptors set up below (the parent may run with 0-2 closed)
  out_fd = fcntl(out_fd, F_DUPFD_CLOEXEC, 10);
  status_fd = fcntl(status_fd, F_DUPFD_CLOEXEC, 10);
  if (out_fd < 0 || status_fd < 0) _exit(127);
  char net = 'n';
  if (spec.limits && spec.limits->isolate_network) {
    if (unshare(CLONE_NEWNET) == 0 || unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0) net = 'N';
  }
  write_all(status_fd, &net, 1);
  const int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) dup2(devnull, 0);
  dup2(out_fd, 1);
  dup2(out_fd, 2);
  dup3(status_fd, 3, O_CLOEXEC);
  close_range(4, ~0U, 0);
  if (!spec.cwd.empty() && chdir(spec.cwd.c_str()) != 0) {
    const int e = errno;
    write_all(3, &e, sizeof e);
    _exit(127);
  }
  if (const SandboxLimits* l = spec.limits) {
    set_limit(RLIMIT_CPU, (rlim_t)l->cpu_seconds, (rlim_t)l->cpu_seconds + 1);
    set_limit(RLIMIT_AS, (rlim_t)l->memory_bytes, (rlim_t)l->memory_bytes);
    set_limit(RLIMIT_FSIZE, (rlim_t)l->file_bytes, (rlim_t)l->file_bytes);
    set_limit(RLIMIT_NPROC, (rlim_t)l->processes, (rlim_t)l->processes);
    set_limit(RLIMIT_CORE, 0, 0);
  }
  execve(argv[0], argv, envp);
  const int e = errno;
  write_all(3, &e, sizeof e);
  _exit(127);
}

// Runs spec to completion (or the deadline) and collects its output.
SandboxResult run_child(const ChildSpec& spec, double wall_seconds, size_t max_output) {
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
  setpgid(pid, pid);  // also done by the child; whichever runs first

  SandboxResult r;
  const auto deadline = t0 + std::chrono::duration<double>(wall_seconds);
  auto ms_left = [&] {
    return (int)std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
  };
  char buf[8192];
  bool out_open = true;
  int wstatus = 0;
  rusage usage{};
  bool reaped = false;
  while (!reaped) {
    if (out_open) {
      pollfd p{out[0], POLLIN, 0};
      const int n = poll(&p, 1, std::min(ms_left(), 50));
      if (n > 0) {
        const ssize_t got = read(out[0], buf, sizeof buf);
        if (got > 0) {
          const size_t keep = std::min((size_t)got, max_output - std::min(max_output, r.output.size()));
          r.output.append(buf, keep);
          if (keep < (size_t)got) r.output_truncated = true;
        } else if (got == 0 || errno != EINTR) {
          out_open = false;
        }
      }
    } else {
      usleep(2000);
    }
    if (wait4(pid, &wstatus, WNOHANG, &usage) == pid) reaped = true;
    if (!reaped && Clock::now() >= deadline) {
      r.timed_out = true;
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      while (wait4(pid, &wstatus, 0, &usage) < 0 && errno == EINTR) {}
      reaped = true;
    }
  }
  kill(-pid, SIGKILL);  // grandchildren left in the group
  // the rest of the output already written (bounded: the pipe's buffer)
  if (out_open) {
    const int flags = fcntl(out[0], F_GETFL);
    fcntl(out[0], F_SETFL, flags | O_NONBLOCK);
    ssize_t got;
    while ((got = read(out[0], buf, sizeof buf)) > 0) {
      const size_t keep = std::min((size_t)got, max_output - std::min(max_output, r.output.size()));
      r.output.append(buf, keep);
      if (keep < (size_t)got) r.output_truncated = true;
    }
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
  check(!exec_failed, "sandbox: cannot run " + spec.argv[0] + ": " + std::strerror(exec_errno));
  return r;
}

std::string resolve_python3() {
  const std::string found = find_on_path("python3");
  if (found.empty()) return "";
  ChildSpec spec;
  spec.argv = {found, "-c", "import sys; sys.stdout.write(sys.executable)"};
  for (char** e = environ; *e; ++e) spec.envp.push_back(*e);  // a wrapper may need its variables
  try {
    const SandboxResult r = run_child(spec, 30.0, 4096);
    if (r.passed() && !r.output.empty() && r.output[0] == '/') return r.output;
  } catch (const Error&) {
  }
  return "";
}

}  // namespace

const std::string& python3_path() {
  static const std::string path = resolve_python3();
  return path;
}

SandboxResult run_python(const std::string& program, const SandboxLimits& limits) {
  const std::string& python = python3_path();
  check(!python.empty(), "sandbox: no python3 on PATH");
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
  return run_child(spec, limits.wall_seconds, limits.max_output);
}

}  // namespace h1bkv
