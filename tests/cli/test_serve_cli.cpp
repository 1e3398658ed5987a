// `h1bkv serve` as a process, with real clients: curl and the official openai Python client
// (tests/cli/serve_openai_client.py, from the virtual environment scripts/setup.sh makes in .venv;
// skipped with a message where it is absent). stories260K, a free loopback port.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

#include "run_cli.h"

using namespace h1bkv::test;
using nlohmann::json;

namespace {

// A background process (a server, or the scale-out script); its stderr and stdout go to a temp
// file, which is polled until `ready` matches (group 1: host, group 2: port).
struct Background {
  pid_t pid = -1;
  int port = 0;
  std::string host, log;
  std::smatch match;

  Background(const std::string& cmd, const std::string& ready) {
    log = std::filesystem::temp_directory_path() /
          ("h1bkv_serve_" + std::to_string(getpid()) + "_" + std::to_string(++count()) + ".log");
    pid = fork();
    if (pid == 0) {
      setpgid(0, 0);  // its own group: the destructor ends the process and its children
      setenv("OMP_WAIT_POLICY", "passive", 1);
      execl("/bin/sh", "sh", "-c", ("exec " + cmd + " >" + log + " 2>&1").c_str(), (char*)nullptr);
      _exit(127);
    }
    const std::regex re(ready);
    for (int i = 0; i < 1200 && port == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      text = read_log();
      if (std::regex_search(text, match, re)) {
        host = match[1];
        port = std::stoi(match[2]);
      }
      int st = 0;
      if (waitpid(pid, &st, WNOHANG) == pid) {
        pid = -1;
        break;
      }
    }
  }
  ~Background() {
    if (pid > 0) {
      kill(-pid, SIGTERM);
      int st = 0;
      waitpid(pid, &st, 0);
    }
    std::filesystem::remove(log);
  }
  std::string read_log() const {
    std::ifstream f(log);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
  static int& count() {
    static int n = 0;
    return n;
  }
  std::string text;
};

// `h1bkv serve ARGS` on a free loopback port.
struct ServeProcess : Background {
  explicit ServeProcess(const std::string& args)
      : Background(std::string(H1BKV_BINARY) + " serve " + args, "listening on http://([0-9.]+):([0-9]+)") {}
};

std::string sh(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

class ServeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(stories260k())) GTEST_SKIP() << stories260k() << " not found";
  }
};

TEST_F(ServeCli, CurlChatCompletionStreamAndBind) {
  if (system("command -v curl >/dev/null") != 0) GTEST_SKIP() << "curl not installed (scripts/setup.sh installs it)";
  ServeProcess s("-m " + stories260k() + " --port 0 -c 256 -t 1");
  ASSERT_GT(s.port, 0) << s.read_log();
  EXPECT_EQ(s.host, "127.0.0.1") << "binds loopback unless --host says otherwise";
  const std::string chat = sh("curl -s " + s.url() + "/v1/chat/completions -H 'Content-Type: application/json' "
                              "-d '{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":8,\"temperature\":0}'");
  const json j = json::parse(chat, nullptr, false);
  ASSERT_TRUE(j.is_object()) << chat;
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_LE(j["usage"]["completion_tokens"].get<int>(), 8);
  const std::string whole = sh("curl -s " + s.url() + "/v1/completions -H 'Content-Type: application/json' "
                               "-d '{\"prompt\":\"Once upon a time\",\"max_tokens\":16,\"temperature\":0}'");
  const std::string text = json::parse(whole)["choices"][0]["text"];
  const std::string stream = sh("curl -sN " + s.url() + "/v1/completions -H 'Content-Type: application/json' "
                                "-d '{\"prompt\":\"Once upon a time\",\"max_tokens\":16,\"temperature\":0,\"stream\":true}'");
  std::string joined;
  size_t at = 0;
  while ((at = stream.find("data: {", at)) != std::string::npos) {
    const size_t end = stream.find("\n\n", at);
    joined += json::parse(stream.substr(at + 6, end - at - 6))["choices"][0]["text"].get<std::string>();
    at = end;
  }
  EXPECT_EQ(joined, text);
  EXPECT_NE(stream.find("data: [DONE]\n\n"), std::string::npos);
  const std::string code = sh("curl -s -o /dev/null -w '%{http_code}' " + s.url() +
                              "/v1/completions -H 'Content-Type: application/json' -d '{bad'");
  EXPECT_EQ(code, "400");
}

TEST_F(ServeCli, OpenAiPythonClient) {
  const std::string py = std::string(H1BKV_TEST_DIR) + "/../.venv/bin/python";
  if (!std::filesystem::exists(py) || system((py + " -c 'import openai' 2>/dev/null").c_str()) != 0)
    GTEST_SKIP() << "no .venv with the openai package (scripts/setup.sh creates it)";
  ServeProcess s("-m " + stories260k() + " --port 0 -c 256 -t 1 --api-key k3y --cache h1b:bits=64");
  ASSERT_GT(s.port, 0) << s.read_log();
  const std::string out = sh(py + " " + H1BKV_TEST_DIR + "/cli/serve_openai_client.py " + s.url() + "/v1 k3y 2>&1");
  EXPECT_EQ(out, "ok\n") << out;
}

// The chat page in a real browser: /?prompt= sends the prompt on load; the DOM after the reply
// streamed in holds the assistant's text.
TEST_F(ServeCli, ChatPageStreamsInHeadlessChromium) {
  if (system("command -v chromium >/dev/null") != 0)
    GTEST_SKIP() << "chromium not installed (scripts/setup.sh installs it): the browser test is skipped";
  ServeProcess s("-m " + stories260k() + " --port 0 -c 256 -t 1 --cache kivi:bits=2");
  ASSERT_GT(s.port, 0) << s.read_log();
  const std::string profile = std::filesystem::temp_directory_path() / ("h1bkv_chromium_" + std::to_string(getpid()));
  // --virtual-time-budget runs out while the reply still streams when the server is slow (ASan,
  // a loaded machine: 20 s of virtual time took 2 s of real time there), so a page dumped
  // mid-reply is loaded again with a 5x budget, each load a new request.
  std::string dom;
  for (int budget_ms = 20000; budget_ms <= 2500000; budget_ms *= 5) {
    dom = sh("timeout 300 chromium --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir=" + profile +
             " --virtual-time-budget=" + std::to_string(budget_ms) + " --dump-dom '" + s.url() +
             "/?prompt=Once%20upon%20a%20time' 2>/dev/null");
    if (dom.find("data-replies=\"1\"") != std::string::npos) break;
  }
  std::filesystem::remove_all(profile);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(dom, m, std::regex("<div class=\"assistant\" id=\"reply1\">([^<]*)</div>"))) << dom;
  EXPECT_GT(m[1].length(), 10) << dom;
  EXPECT_NE(dom.find("data-replies=\"1\""), std::string::npos) << "the reply finished: " << dom;
  EXPECT_NE(dom.find("<span id=\"cache\">kivi</span>"), std::string::npos) << dom;
}

// scripts/serve_scaleout.sh: two replicas behind nginx; requests through nginx (streaming too)
// get the greedy text, and both replicas answer some.
TEST_F(ServeCli, TwoReplicasBehindNginx) {
  if (system("command -v nginx >/dev/null || test -x /usr/sbin/nginx") != 0)
    GTEST_SKIP() << "nginx not installed (scripts/setup.sh installs it)";
  int port = 0;
  {  // a free port for nginx
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ASSERT_EQ(bind(fd, (sockaddr*)&a, sizeof a), 0);
    getsockname(fd, (sockaddr*)&a, &len);
    port = ntohs(a.sin_port);
    close(fd);
  }
  Background lb(std::string(H1BKV_TEST_DIR) + "/../scripts/serve_scaleout.sh " + std::to_string(port) +
                    " 2 -- -m " + stories260k() + " -c 256 -t 1",
                "scaleout: http://([0-9.]+):([0-9]+) -> ");
  ASSERT_EQ(lb.port, port) << lb.read_log();
  const std::string base = "curl -s " + lb.url() + "/v1/completions -H 'Content-Type: application/json' ";
  const std::string want = json::parse(sh("curl -s " + lb.url() + "/v1/completions -d '{\"prompt\":\"The dog\","
                                          "\"max_tokens\":12,\"temperature\":0}'"))["choices"][0]["text"];
  for (int i = 0; i < 3; ++i) {
    const std::string r = sh(base + "-d '{\"prompt\":\"The dog\",\"max_tokens\":12,\"temperature\":0}'");
    EXPECT_EQ(json::parse(r)["choices"][0]["text"], want) << r;
  }
  const std::string stream = sh("curl -sN " + lb.url() + "/v1/completions -d '{\"prompt\":\"The dog\","
                                "\"max_tokens\":12,\"temperature\":0,\"stream\":true}'");
  EXPECT_NE(stream.find("data: [DONE]"), std::string::npos) << stream;
  std::smatch m;
  const std::string out = lb.read_log();
  ASSERT_TRUE(std::regex_search(out, m, std::regex("-> ([0-9]+) ([0-9]+)"))) << out;
  for (int r = 1; r <= 2; ++r) {
    const std::string metrics = sh("curl -s http://127.0.0.1:" + std::string(m[r]) + "/metrics");
    EXPECT_NE(metrics.find("h1bkv_generated_tokens_total "), std::string::npos) << metrics;
    EXPECT_EQ(metrics.find("h1bkv_generated_tokens_total 0\n"), std::string::npos)
        << "replica " << r << " generated nothing: " << metrics;
  }
}

TEST_F(ServeCli, BadFlagsAreOneLineErrors) {
  auto r = run_cli("serve -m " + stories260k() + " --port 70000");
  EXPECT_EQ(r.code, 2) << r.out;
  r = run_cli("serve -m " + stories260k() + " -np 0");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--parallel: 0 is out of range"), std::string::npos) << r.out;
  r = run_cli("serve -m " + stories260k() + " --prefill-chunk -1");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--prefill-chunk: -1 is out of range"), std::string::npos) << r.out;
  r = run_cli("serve -m " + stories260k() + " --cache h1b:bits=3");
  EXPECT_NE(r.code, 0) << r.out;
  r = run_cli("serve -m " + stories260k() + " --host 203.0.113.7 --port 0");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("error: cannot listen on 203.0.113.7"), std::string::npos) << r.out;
}

}  // namespace
