// h1bkv: one binary, one subcommand per file (cmd_*.cpp). Errors in input (files, text, context
// overflow, a failed write) print one line "error: ..." and exit 1; a bad command line (unknown
// flag, value out of range) prints one line "error: ..." and exits 2.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "tensor/isa.h"
#include "util/error.h"
#include "util/file.h"

int main(int argc, char** argv) {
  // A closed descriptor 0-2 would be reused by the next open(), and output meant for stdout would
  // land in a file the run writes. Hold 0 and 2 with /dev/null; refuse to run without stdout.
  for (int fd : {0, 2})
    if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) != fd) return 1;
  if (fcntl(1, F_GETFD) < 0) {
    std::fprintf(stderr, "error: standard output is closed\n");
    return 1;
  }
  CLI::App app{"h1bkv: LLM inference with compressed KV caches"};
  app.require_subcommand(1);
  std::map<CLI::App*, h1bkv::Action> actions;
  for (auto reg : {h1bkv::register_run, h1bkv::register_ppl, h1bkv::register_info,
                   h1bkv::register_bench, h1bkv::register_calibrate, h1bkv::register_compare,
                   h1bkv::register_eval, h1bkv::register_finetune, h1bkv::register_serve}) {
    const size_t before = app.get_subcommands({}).size();
    h1bkv::Action act = reg(app);
    actions[app.get_subcommands({})[before]] = act;
  }
  // llama.cpp's multi-letter short flags, which CLI11 cannot declare, map to their long names.
  std::vector<std::string> args;
  for (int i = argc - 1; i >= 1; --i) {
    std::string a = argv[i];
    if (a == "-ctk") a = "--cache-type-k";
    if (a == "-ctv") a = "--cache-type-v";
    if (a == "-np") a = "--parallel";
    args.push_back(a);
  }
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "error: %s (see --help)\n", e.what());
    return 2;
  }
  try {
    (void)h1bkv::active_isa();  // H1BKV_ISA (tensor/isa.h) is checked before any work
    for (auto& [sub, act] : actions)
      if (sub->parsed()) {
        const int rc = act();
        h1bkv::check_stdout();
        return rc;
      }
  } catch (const h1bkv::Error& e) {
    std::fflush(stdout);  // what was printed comes before the message, which ends the output
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  }
  return 1;
}
