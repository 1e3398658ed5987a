#include "eval/tasks/arc_piqa.h"

#include <cctype>

#include "eval/data_file.h"
#include "util/error.h"

namespace h1bkv {

std::string question_answer_prompt(const std::string& query) {
  size_t end = query.size();
  while (end > 0 && std::isspace((unsigned char)query[end - 1])) --end;
  std::string q = query.substr(0, end);
  const std::string head = "Question: ";
  if (q.compare(0, head.size(), head) != 0) q = head + q;
  return q + "\nAnswer:";
}

std::vector<McQuestion> load_query_choices_gold(const std::string& path) {
  std::vector<McQuestion> items;
  for (const JsonLine& l : read_jsonl(path)) {
    const nlohmann::json& j = l.obj;
    const std::string where = l.where + ": ";
    check(j.contains("query") && j.contains("choices") && j.contains("gold") &&
              j["query"].is_string() && j["choices"].is_array() && j["gold"].is_number_integer(),
          where + "expected {\"query\": string, \"choices\": [...], \"gold\": int}");
    McQuestion q;
    q.context = question_answer_prompt(j["query"].get<std::string>());
    if (j.contains("context")) {  // a passage before the question, as lm-eval's SciQ prompt
      check(j["context"].is_string(), where + "\"context\" is not a string");
      std::string c = j["context"].get<std::string>();
      while (!c.empty() && std::isspace((unsigned char)c.back())) c.pop_back();
      if (!c.empty()) q.context = c + "\n" + q.context;
    }
    for (const auto& c : j["choices"]) {
      check(c.is_string(), where + "a choice is not a string");
      q.choices.push_back(c.get<std::string>());
    }
    const int64_t gold = j["gold"].get<int64_t>();
    check(!q.choices.empty(), where + "\"choices\" is empty");
    check(gold >= 0 && gold < (int64_t)q.choices.size(),
          where + "gold " + std::to_string(gold) + " is out of range [0, " +
              std::to_string(q.choices.size()) + ")");
    q.gold = (int)gold;
    items.push_back(std::move(q));
  }
  return items;
}

namespace {

std::unique_ptr<Task> make_qa_task(const TaskOptions& o, const std::string& name, const std::string& file) {
  check(o.tok != nullptr, name + ": no tokenizer");
  McTaskSpec spec;
  spec.name = name;
  spec.standard_size = 500;
  spec.settings = {{"shots", 0}, {"template", "Question: {question}\\nAnswer: {choice}"},
                   {"file", "data/tasks/" + file}};
  return std::make_unique<McTask>(spec, load_query_choices_gold(o.data_dir + "/tasks/" + file), *o.tok);
}

}  // namespace

std::unique_ptr<Task> make_arc_easy_task(const TaskOptions& o) {
  return make_qa_task(o, "arc_easy", "arc_easy.jsonl");
}
std::unique_ptr<Task> make_arc_challenge_task(const TaskOptions& o) {
  return make_qa_task(o, "arc_challenge", "arc_challenge.jsonl");
}
std::unique_ptr<Task> make_piqa_task(const TaskOptions& o) {
  return make_qa_task(o, "piqa", "piqa.jsonl");
}

}  // namespace h1bkv
