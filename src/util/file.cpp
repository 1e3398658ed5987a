#include "util/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "util/error.h"

namespace h1bkv {

namespace {

std::string errno_text() { return std::strerror(errno); }

const char* file_kind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a plain file";
}

}  // namespace

uint64_t check_regular_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error(path + ": cannot open: " + errno_text());
  check(S_ISREG(st.st_mode), path + ": not a regular file (" + file_kind(st.st_mode) + ")");
  return (uint64_t)st.st_size;
}

std::string read_file(const std::string& path, uint64_t max_bytes) {
  const uint64_t size = check_regular_file(path);
  const std::string limit = "the limit is " + std::to_string(max_bytes) + " bytes";
  check(size <= max_bytes,
        path + ": " + std::to_string(size) + " bytes is too large (" + limit + ")");
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK);
  if (fd < 0) throw Error(path + ": cannot open: " + errno_text());
  std::string out;
  out.reserve(size);
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const bool failed = n < 0;
      const std::string why = failed ? errno_text() : "";
      ::close(fd);
      check(!failed, path + ": read error: " + why);
      break;
    }
    out.append(buf, (size_t)n);
    if (out.size() > max_bytes) {  // a file that grows while read (or lies in st_size)
      ::close(fd);
      throw Error(path + ": more than " + std::to_string(max_bytes) + " bytes (" + limit + ")");
    }
  }
  return out;
}

void check_outputs_distinct(const std::vector<std::string>& inputs,
                            const std::vector<std::string>& outputs) {
  struct Id {
    dev_t dev;
    ino_t ino;
    std::string path;
  };
  std::vector<Id> seen;
  for (const auto& p : inputs) {
    struct stat st {};
    if (!p.empty() && ::stat(p.c_str(), &st) == 0) seen.push_back({st.st_dev, st.st_ino, p});
  }
  const size_t n_inputs = seen.size();
  for (const auto& p : outputs) {
    struct stat st {};
    if (p.empty() || ::stat(p.c_str(), &st) != 0) continue;  // a new file clashes with nothing
    if (!S_ISREG(st.st_mode)) continue;  // /dev/null may take several outputs
    for (size_t k = 0; k < seen.size(); ++k)
      check(seen[k].dev != st.st_dev || seen[k].ino != st.st_ino,
            "output " + p + " is the same file as " +
                (k < n_inputs ? "the input " : "the output ") + seen[k].path +
                "; refusing to overwrite it");
    seen.push_back({st.st_dev, st.st_ino, p});
  }
}

OutputFile::OutputFile(const std::string& path) : path_(path) {
  check(!path.empty(), "empty output path");
  struct stat st {};
  std::string target = path;
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode)) {
      check(!S_ISDIR(st.st_mode), path + ": is a directory");
      in_place_ = true;
    } else if (char* real = ::realpath(path.c_str(), nullptr)) {  // rename onto a link's target
      target = real;
      std::free(real);
    }
  }
  if (in_place_) {
    tmp_ = path;
    f_ = std::fopen(path.c_str(), "wb");
    if (!f_) throw Error(path + ": cannot open for writing: " + errno_text());
    return;
  }
  const size_t slash = target.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : target.substr(0, slash + 1);
  const std::string name = slash == std::string::npos ? target : target.substr(slash + 1);
  std::string tmpl = dir + "." + name + ".tmp-XXXXXX";
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0) throw Error(path + ": cannot create a file beside it: " + errno_text());
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd, 0666 & ~mask);  // mkstemp makes 0600; give the mode a plain create would
  path_ = target;
  tmp_ = tmpl;
  f_ = ::fdopen(fd, "wb");
  if (!f_) {
    ::close(fd);
    ::unlink(tmp_.c_str());
    throw Error(path + ": cannot open for writing: " + errno_text());
  }
}

OutputFile::~OutputFile() {
  if (f_) std::fclose(f_);
  if (!committed_ && !in_place_) ::unlink(tmp_.c_str());
}

void OutputFile::write(const void* data, size_t n) {
  check(f_ != nullptr, path_ + ": write after close");
  if (n > 0 && std::fwrite(data, 1, n, f_) != n)
    throw Error(path_ + ": write failed: " + errno_text());
}

void OutputFile::close_stream() {
  if (!f_) return;
  const bool ok = std::fclose(f_) == 0;
  f_ = nullptr;
  if (!ok) throw Error(path_ + ": write failed: " + errno_text());
}

void OutputFile::commit() {
  if (f_) {
    const bool ok = std::fflush(f_) == 0 && !std::ferror(f_);
    const std::string why = errno_text();
    close_stream();
    if (!ok) throw Error(path_ + ": write failed: " + why);
  }
  if (!in_place_ && ::rename(tmp_.c_str(), path_.c_str()) != 0)
    throw Error(path_ + ": cannot rename " + tmp_ + " into place: " + errno_text());
  committed_ = true;
}

void write_file(const std::string& path, const std::string& text) {
  OutputFile f(path);
  f.write(text.data(), text.size());
  f.commit();
}

void check_stdout() {
  errno = 0;
  const bool ok = std::fflush(stdout) == 0 && !std::ferror(stdout);
  if (!ok) throw Error(std::string("writing to standard output failed: ") +
                       (errno ? errno_text() : "stream error"));
}

}  // namespace h1bkv
