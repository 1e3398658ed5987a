// Files of a run: inputs are regular files checked with stat before anything opens them (a FIFO
// or device would block or never end), text inputs are bounded in size, and outputs are written
// to a temporary file beside the target and renamed into place, so an interrupted or failed run
// never leaves a truncated file under the output's name.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace h1bkv {

// Largest text input read_file accepts (256 MiB; wikitext-103's whole training set is ~540 MB
// of text, far more than a CPU run scores).
constexpr uint64_t kMaxTextBytes = uint64_t{256} << 20;

// Throws Error("<path>: cannot open: ...") when path does not exist, or
// Error("<path>: not a regular file (...)") for a FIFO, device, directory or socket.
// Never opens the path. Returns the file size.
uint64_t check_regular_file(const std::string& path);

// The whole regular file as bytes (checked as above first); throws Error when it is larger than
// max_bytes, naming the limit.
std::string read_file(const std::string& path, uint64_t max_bytes = kMaxTextBytes);

// Throws Error when an output path names the same file (device and inode, so links and other
// spellings count) as an input of the run or as another output.
void check_outputs_distinct(const std::vector<std::string>& inputs,
                            const std::vector<std::string>& outputs);

// An output written to "<dir>/.<name>.tmp-XXXXXX" and renamed onto path by commit(); the
// destructor removes the temporary when commit() was not reached. A path that exists and is not a
// regular file (/dev/null, a FIFO, a terminal) is written in place instead, since rename would
// replace the device node.
class OutputFile {
 public:
  explicit OutputFile(const std::string& path);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  FILE* stream() { return f_; }
  const std::string& path() const { return path_; }
  // Where the bytes go until commit() (path itself for a device).
  const std::string& temp_path() const { return tmp_; }
  // Checked fwrite: throws Error("<path>: write failed: ...") on a short write.
  void write(const void* data, size_t n);
  // Closes the stream without committing, for writers that reopen temp_path() themselves.
  void close_stream();
  // Flushes, closes (checked) and renames into place.
  void commit();

 private:
  std::string path_, tmp_;
  FILE* f_ = nullptr;
  bool in_place_ = false, committed_ = false;
};

// Writes text as the whole file through an OutputFile; throws Error naming path on any failure.
void write_file(const std::string& path, const std::string& text);

// Flushes stdout and throws Error("writing to standard output failed: ...") when any write to it
// failed (a full disk, /dev/full, a closed descriptor).
void check_stdout();

}  // namespace h1bkv
