#include "eval/tasks/task_file.h"

#include <algorithm>
#include <filesystem>

#include "eval/tasks/arc_piqa.h"
#include "eval/tasks/mc_task.h"
#include "tokenize/tokenizer.h"

namespace h1bkv {

std::unique_ptr<Task> make_task_from_file(const std::string& path, const Tokenizer& tok) {
  std::vector<McQuestion> items = load_query_choices_gold(path);
  McTaskSpec spec;
  spec.name = std::filesystem::path(path).stem().string();
  spec.standard_size = (int64_t)items.size();
  // the cache must hold the longest prompt + choice (+ BOS and the delimiter's token)
  int64_t longest = 0;
  for (const McQuestion& q : items) {
    const int64_t ctx = (int64_t)tok.encode(q.context, false, false).size();
    for (const std::string& c : q.choices)
      longest = std::max(longest, ctx + (int64_t)tok.encode(" " + c, false, false).size() + 2);
  }
  spec.ctx_needed = longest;
  spec.settings = {{"shots", 0},
                   {"template", "[{context}\\n]Question: {question}\\nAnswer: {choice}"},
                   {"file", path}};
  return std::make_unique<McTask>(spec, std::move(items), tok);
}

}  // namespace h1bkv
