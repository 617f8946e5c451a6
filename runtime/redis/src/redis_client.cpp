// redis_client.cpp — the redis:// URL reader and RedisClient
// (tlsp/redis_client.h): one hiredis connection behind a mutex, dropped on
// any connection error and made again by the next call.
#include "tlsp/redis_client.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "tlsp/base/address.h"
#include "tlsp/base/domain_name.h"
#include "tlsp/base/sigpipe.h"

namespace tlsp::redis {
namespace {

constexpr std::string_view kScheme = "redis://";

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A plain decimal without sign or leading zero, at most `max`.
std::optional<int64_t> decimal(std::string_view s, int64_t max) {
  if (s.empty() || s.size() > 18 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v > max) return std::nullopt;
  return v;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// USER or PASSWORD: printable ASCII but `@ / : %` and space, or %XX.
std::optional<std::string> userinfo_part(std::string_view s, std::string* problem, const char* what) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%') {
      const int hi = i + 2 < s.size() ? hex_value(s[i + 1]) : -1;
      const int lo = i + 2 < s.size() ? hex_value(s[i + 2]) : -1;
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
        *problem = std::string("the ") + what + " has a `%` that is not followed by two hex digits (not %00)";
        return std::nullopt;
      }
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
      continue;
    }
    if (c <= ' ' || c > '~' || c == '@' || c == '/' || c == ':') {
      *problem = std::string("the ") + what + " holds a character that must be written as %XX";
      return std::nullopt;
    }
    out.push_back(c);
  }
  return out;
}

std::string ticked(std::string_view s) {
  // The URL may hold a password: messages quote the parts that cannot.
  std::string out = "`";
  for (char c : s) out.push_back(c >= ' ' && c <= '~' && c != '`' ? c : '?');
  return out + "`";
}

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

Reply convert(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      out.type = r->type == REDIS_REPLY_STRING   ? Reply::Type::string
                 : r->type == REDIS_REPLY_STATUS ? Reply::Type::status
                                                 : Reply::Type::error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::array;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default:
      out.type = Reply::Type::nil;
  }
  return out;
}

// An error reply's text, on one line.
std::string one_line(std::string_view s) {
  std::string out;
  for (char c : s) out.push_back(c >= ' ' && c <= '~' ? c : ' ');
  if (out.size() > 200) out = out.substr(0, 200) + "...";
  return out;
}

}  // namespace

bool looks_like_redis_url(std::string_view spec) {
  if (spec.size() < kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    char c = spec[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kScheme[i]) return false;
  }
  return true;
}

RedisUrlParse parse_redis_url(std::string_view spec) {
  RedisUrlParse out;
  auto fail = [&](std::string problem) {
    out.url.reset();
    out.problem = std::move(problem);
    return out;
  };
  constexpr std::string_view kForm = " (redis://[[USER]:PASSWORD@]HOST:PORT/DB)";
  if (spec.size() > kMaxRedisUrlLength)
    return fail("a redis URL is at most " + std::to_string(kMaxRedisUrlLength) + " characters");
  if (!looks_like_redis_url(spec)) return fail("not a redis URL" + std::string(kForm));
  RedisUrl url;
  std::string_view rest = spec.substr(kScheme.size());
  if (size_t q = rest.find_first_of("?#"); q != std::string_view::npos)
    return fail("a redis URL takes no query or fragment" + std::string(kForm));

  // The authority ends at the first `/`; the userinfo at the last `@` in it.
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return fail("the database number is missing, e.g. `/0`" + std::string(kForm));
  std::string_view authority = rest.substr(0, slash);
  const std::string_view db = rest.substr(slash + 1);
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view info = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const size_t colon = info.find(':');
    if (colon == std::string_view::npos)
      return fail("the part before `@` must be `:PASSWORD` or `USER:PASSWORD`" + std::string(kForm));
    std::string problem;
    std::optional<std::string> user = userinfo_part(info.substr(0, colon), &problem, "user name");
    if (!user) return fail(problem);
    std::optional<std::string> password = userinfo_part(info.substr(colon + 1), &problem, "password");
    if (!password) return fail(problem);
    if (password->empty()) return fail("the password is empty");
    url.user = std::move(*user);
    url.password = std::move(*password);
    url.has_password = true;
  }

  std::string_view host;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return fail("`[` without `]` around an IPv6 address");
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (after.empty() || after.front() != ':') return fail("the port is missing, e.g. `:6379`" + std::string(kForm));
    port = after.substr(1);
    const std::optional<base::IpAddress> a = base::parse_ip_address(host);
    if (!a || !a->v6) return fail(ticked(host) + " is not an IPv6 address");
    url.host = base::address_text(*a);
    url.host_is_ipv6 = true;
  } else {
    const size_t colon = authority.rfind(':');
    if (colon == std::string_view::npos) return fail("the port is missing, e.g. `:6379`" + std::string(kForm));
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    if (host.empty()) return fail("the host is missing" + std::string(kForm));
    if (host.find(':') != std::string_view::npos)
      return fail("an IPv6 address is written in brackets, e.g. `redis://[::1]:6379/0`");
    if (const std::optional<base::IpAddress> a = base::parse_ip_address(host)) {
      url.host = base::address_text(*a);
    } else {
      const NameCheck n = check_host_name(host);
      if (!n.ok()) return fail("host " + ticked(host) + ": " + n.problem);
      url.host = n.name;
    }
  }
  const std::optional<int64_t> p = decimal(port, 65535);
  if (!p || *p == 0) return fail("the port " + ticked(port) + " is not a number 1..65535");
  url.port = static_cast<uint16_t>(*p);
  const std::optional<int64_t> d = decimal(db, kMaxRedisDb);
  if (!d)
    return fail("the database " + ticked(db) + " is not a number 0.." + std::to_string(kMaxRedisDb) +
                std::string(kForm));
  url.db = *d;
  out.url = std::move(url);
  return out;
}

std::string redacted_url(const RedisUrl& u) {
  std::string s(kScheme);
  if (u.has_password) s += u.user + ":***@";
  s += u.host_is_ipv6 ? "[" + u.host + "]" : u.host;
  s += ":" + std::to_string(u.port) + "/" + std::to_string(u.db);
  return s;
}

struct RedisClient::Impl {
  RedisUrl url;
  ClientOptions options;
  std::string name;  // redacted_url, for messages
  std::mutex mutex;
  redisContext* context = nullptr;       // guarded by mutex; nullptr: not connected
  std::map<std::string, std::string, std::less<>> script_sha;  // script text -> SHA-1 (SCRIPT LOAD)

  ~Impl() { drop(); }

  void drop() {
    if (context != nullptr) redisFree(context);
    context = nullptr;
  }

  Result connection_error(std::string what) {
    Result r;
    r.status = Result::Status::connection_error;
    r.error = "redis " + name + ": " + what;
    return r;
  }

  // The context's error as a result, and the connection dropped.
  Result context_failure(const char* doing) {
    std::string what;
    if (context == nullptr) {
      what = std::string(doing) + ": out of memory";
    } else if (context->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      what = std::string(doing) + ": no reply within " + std::to_string(options.command_timeout.count()) + " ms";
    } else if (context->err == REDIS_ERR_EOF) {
      what = std::string(doing) + ": the server closed the connection";
    } else {
      what = std::string(doing) + ": " + one_line(context->errstr);
    }
    drop();
    return connection_error(std::move(what));
  }

  // One command on the open connection; a connection error drops it.
  Result run(const std::vector<std::string>& argv, const char* doing) {
    std::vector<const char*> args;
    std::vector<size_t> lengths;
    args.reserve(argv.size());
    lengths.reserve(argv.size());
    for (const std::string& a : argv) {
      args.push_back(a.data());
      lengths.push_back(a.size());
    }
    errno = 0;
    void* raw = redisCommandArgv(context, static_cast<int>(args.size()), args.data(), lengths.data());
    if (raw == nullptr) return context_failure(doing);
    redisReply* reply = static_cast<redisReply*>(raw);
    Result r;
    r.reply = convert(reply);
    freeReplyObject(reply);
    if (r.reply.type == Reply::Type::error) {
      r.status = Result::Status::server_error;
      r.error = "redis " + name + ": " + one_line(r.reply.str);
    } else {
      r.status = Result::Status::ok;
    }
    return r;
  }

  // Connected, authenticated and on the URL's database; or why not.
  std::optional<Result> ensure_connected() {
    if (context != nullptr) return std::nullopt;
    base::ignore_sigpipe_once();
    errno = 0;
    context = redisConnectWithTimeout(url.host.c_str(), url.port, to_timeval(options.connect_timeout));
    if (context == nullptr || context->err != 0) {
      std::string what = context == nullptr ? "out of memory" : one_line(context->errstr);
      if (context != nullptr && context->err == REDIS_ERR_IO && (errno == EINPROGRESS || errno == ETIMEDOUT))
        what = "no connection within " + std::to_string(options.connect_timeout.count()) + " ms";
      drop();
      return connection_error("cannot connect: " + what);
    }
    if (redisSetTimeout(context, to_timeval(options.command_timeout)) != REDIS_OK)
      return context_failure("cannot set the command timeout");
    if (url.has_password) {
      std::vector<std::string> auth{"AUTH"};
      if (!url.user.empty()) auth.push_back(url.user);
      auth.push_back(url.password);
      Result r = run(auth, "AUTH");
      if (r.status == Result::Status::server_error) {
        drop();
        return connection_error("authentication refused: " + one_line(r.reply.str));
      }
      if (!r.ok()) return r;
    }
    if (url.db != 0) {
      Result r = run({"SELECT", std::to_string(url.db)}, "SELECT");
      if (r.status == Result::Status::server_error) {
        drop();
        return connection_error("database " + std::to_string(url.db) + " refused: " + one_line(r.reply.str));
      }
      if (!r.ok()) return r;
    }
    return std::nullopt;
  }

  Result command(const std::vector<std::string>& argv) {
    if (std::optional<Result> failed = ensure_connected()) return std::move(*failed);
    return run(argv, argv.empty() ? "command" : argv[0].c_str());
  }

  Result load_script(std::string_view script) {
    Result r = command({"SCRIPT", "LOAD", std::string(script)});
    if (r.ok() && r.reply.type != Reply::Type::string) {
      r.status = Result::Status::server_error;
      r.error = "redis " + name + ": SCRIPT LOAD gave no SHA-1";
    }
    if (r.ok()) script_sha[std::string(script)] = r.reply.str;
    return r;
  }
};

RedisClient::RedisClient(RedisUrl url, ClientOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->url = std::move(url);
  impl_->options = options;
  impl_->name = redacted_url(impl_->url);
}

RedisClient::~RedisClient() = default;

Result RedisClient::command(const std::vector<std::string>& argv) {
  std::lock_guard lock(impl_->mutex);
  return impl_->command(argv);
}

Result RedisClient::eval(std::string_view script, const std::vector<std::string>& keys,
                         const std::vector<std::string>& args) {
  std::lock_guard lock(impl_->mutex);
  auto sha = impl_->script_sha.find(script);
  if (sha == impl_->script_sha.end()) {
    Result loaded = impl_->load_script(script);
    if (!loaded.ok()) return loaded;
    sha = impl_->script_sha.find(script);
  }
  auto evalsha = [&](const std::string& digest) {
    std::vector<std::string> argv{"EVALSHA", digest, std::to_string(keys.size())};
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return impl_->command(argv);
  };
  Result r = evalsha(sha->second);
  if (r.status == Result::Status::server_error && r.reply.str.starts_with("NOSCRIPT")) {
    Result loaded = impl_->load_script(script);
    if (!loaded.ok()) return loaded;
    r = evalsha(impl_->script_sha.find(script)->second);
  }
  return r;
}

Result RedisClient::ping() { return command({"PING"}); }

const RedisUrl& RedisClient::url() const { return impl_->url; }

std::string RedisClient::describe() const { return impl_->name; }

}  // namespace tlsp::redis
