// h1bkv: one binary, one subcommand per file (cmd_*.cpp). Errors in input (files, flags, text,
// context overflow) print one line "error: ..." and exit 1.
#include <cstdio>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "util/error.h"

int main(int argc, char** argv) {
  CLI::App app{"h1bkv: LLM inference with compressed KV caches"};
  app.require_subcommand(1);
  std::map<CLI::App*, h1bkv::Action> actions;
  for (auto reg : {h1bkv::register_run, h1bkv::register_ppl, h1bkv::register_info,
                   h1bkv::register_bench, h1bkv::register_calibrate, h1bkv::register_compare,
                   h1bkv::register_eval}) {
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
    args.push_back(a);
  }
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, act] : actions)
      if (sub->parsed()) return act();
  } catch (const h1bkv::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  }
  return 1;
}
