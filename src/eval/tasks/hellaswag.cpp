#include "eval/tasks/hellaswag.h"

#include "eval/data_file.h"
#include "util/error.h"

namespace h1bkv {

std::vector<McQuestion> parse_hellaswag(const std::vector<std::string>& lines) {
  check(lines.size() % 6 == 0, "hellaswag: " + std::to_string(lines.size()) +
                                   " lines is not a multiple of 6 (context, label, 4 endings)");
  std::vector<McQuestion> items;
  for (size_t i = 0; i < lines.size(); i += 6) {
    McQuestion q;
    q.context = lines[i];
    const std::string& label = lines[i + 1];
    check(label.size() == 1 && label[0] >= '0' && label[0] <= '3',
          "hellaswag line " + std::to_string(i + 2) + ": gold label '" + label + "' is not 0-3");
    q.gold = label[0] - '0';
    q.choices.assign(lines.begin() + (ptrdiff_t)i + 2, lines.begin() + (ptrdiff_t)i + 6);
    items.push_back(std::move(q));
  }
  check(!items.empty(), "hellaswag: no items");
  return items;
}

std::unique_ptr<Task> make_hellaswag_task(const TaskOptions& o) {
  check(o.tok != nullptr, "hellaswag: no tokenizer");
  McTaskSpec spec;
  spec.name = "hellaswag";
  spec.standard_size = 500;
  spec.settings = {{"shots", 0}, {"template", "{context} {ending}"},
                   {"file", "data/tasks/hellaswag_val_full.txt.bz2"}, {"headline", "acc_norm"}};
  const std::string path = o.data_dir + "/tasks/hellaswag_val_full.txt.bz2";
  return std::make_unique<McTask>(spec, parse_hellaswag(read_data_lines(path)), *o.tok);
}

}  // namespace h1bkv
