#include "eval/tasks/mmlu.h"

#include <algorithm>
#include <filesystem>

#include "eval/data_file.h"
#include "util/error.h"

namespace h1bkv {

std::vector<std::vector<std::string>> parse_csv(const std::string& text, const std::string& what) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c != '"') field += c;
      else if (i + 1 < text.size() && text[i + 1] == '"') field += '"', ++i;
      else quoted = false;
      continue;
    }
    if (c == '"') quoted = any = true;
    else if (c == ',') row.push_back(field), field.clear(), any = true;
    else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      if (any || !field.empty()) row.push_back(field), rows.push_back(row);
      row.clear(), field.clear(), any = false;
    } else field += c, any = true;
  }
  check(!quoted, what + ": unterminated quoted field");
  if (any || !field.empty()) row.push_back(field), rows.push_back(row);
  return rows;
}

std::vector<MmluQuestion> load_mmlu_csv(const std::string& path) {
  const auto rows = parse_csv(read_data_file(path), path);
  check(!rows.empty() && rows[0].size() == 6 && rows[0][0] == "question",
        path + ": expected the header question,choice0,choice1,choice2,choice3,answer");
  std::vector<MmluQuestion> qs;
  for (size_t r = 1; r < rows.size(); ++r) {
    const std::string where = path + ": row " + std::to_string(r + 1) + ": ";
    check(rows[r].size() == 6, where + std::to_string(rows[r].size()) + " fields, expected 6");
    MmluQuestion q;
    q.question = rows[r][0];
    for (int k = 0; k < 4; ++k) q.choices[k] = rows[r][(size_t)k + 1];
    const std::string& a = rows[r][5];
    check(a.size() == 1 && a[0] >= '0' && a[0] <= '3', where + "answer '" + a + "' is not 0-3");
    q.answer = a[0] - '0';
    qs.push_back(std::move(q));
  }
  return qs;
}

std::string mmlu_question(const MmluQuestion& q, bool with_answer) {
  std::string s = q.question;
  for (int k = 0; k < 4; ++k) s += std::string("\n") + char('A' + k) + ". " + q.choices[k];
  s += "\nAnswer:";
  if (with_answer) s += std::string(" ") + char('A' + q.answer) + "\n\n";
  return s;
}

std::string mmlu_prefix(const std::string& subject, const std::vector<MmluQuestion>& exemplars) {
  std::string name = subject;
  std::replace(name.begin(), name.end(), '_', ' ');
  std::string s = "The following are multiple choice questions (with answers) about " + name + ".\n\n";
  for (const auto& e : exemplars) s += mmlu_question(e, true);
  return s;
}

std::unique_ptr<Task> make_mmlu_task(const TaskOptions& o) {
  check(o.tok != nullptr, "mmlu: no tokenizer");
  const int shots = o.shots < 0 ? 5 : o.shots;
  check(shots <= 5, "mmlu: --shots " + std::to_string(shots) + " exceeds the 5 dev questions per subject");
  const std::string dir = o.data_dir + "/tasks/mmlu";
  std::vector<std::string> subjects;
  const std::string suffix = "_test.csv";
  check(std::filesystem::is_directory(dir + "/test"), dir + "/test: no such directory");
  for (const auto& e : std::filesystem::directory_iterator(dir + "/test")) {
    const std::string f = e.path().filename().string();
    if (f.size() > suffix.size() && f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0)
      subjects.push_back(f.substr(0, f.size() - suffix.size()));
  }
  std::sort(subjects.begin(), subjects.end());
  check(!subjects.empty(), dir + "/test: no <subject>_test.csv files");
  std::vector<McQuestion> items;
  for (const auto& subj : subjects) {
    std::vector<MmluQuestion> dev = load_mmlu_csv(dir + "/dev/" + subj + "_dev.csv");
    check((int)dev.size() >= shots, subj + "_dev.csv: fewer than " + std::to_string(shots) + " questions");
    dev.resize((size_t)shots);
    const std::string prefix = mmlu_prefix(subj, dev);
    for (const auto& q : load_mmlu_csv(dir + "/test/" + subj + "_test.csv"))
      items.push_back({prefix + mmlu_question(q, false), {"A", "B", "C", "D"}, q.answer, subj});
  }
  McTaskSpec spec;
  spec.name = "mmlu";
  spec.standard_size = 10;
  spec.per_group = true;
  spec.has_norm = false;  // the choices are single letters: acc_norm would equal acc
  spec.ctx_needed = 4096;
  spec.settings = {{"shots", shots}, {"exemplars", "the first " + std::to_string(shots) + " dev questions of each subject"},
                   {"template", "original MMLU: 'The following are multiple choice questions (with answers) about "
                                "{subject}.\\n\\n' + exemplars + '{q}\\nA. ..\\nD. ..\\nAnswer:', choices ' A'..' D'"},
                   {"subjects", (int64_t)subjects.size()}};
  return std::make_unique<McTask>(spec, std::move(items), *o.tok);
}

}  // namespace h1bkv
