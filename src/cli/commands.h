// Each subcommand registers its options struct on the app and returns the action to run.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>

namespace h1bkv {

using Action = std::function<int()>;
Action register_run(CLI::App& app);
Action register_ppl(CLI::App& app);
Action register_info(CLI::App& app);
Action register_bench(CLI::App& app);
Action register_calibrate(CLI::App& app);
Action register_compare(CLI::App& app);
Action register_eval(CLI::App& app);
Action register_serve(CLI::App& app);
Action register_finetune(CLI::App& app);

}  // namespace h1bkv
