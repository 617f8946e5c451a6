// base_test.cpp — the shared checks of runtime/base, above all the edge
// cases where the copies they replaced disagreed.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <arpa/inet.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "test_support.h"
#include "tlsp/base/address.h"
#include "tlsp/base/atomic_file.h"
#include "tlsp/base/digest.h"
#include "tlsp/base/quote.h"
#include "tlsp/base/rfc5322_date.h"

namespace fs = std::filesystem;
using namespace tlsp::base;

namespace {

IpAddress ip(std::string_view text) {
  auto a = parse_ip_address(text);
  EXPECT_TRUE(a) << text;
  return a.value_or(IpAddress{});
}

Cidr net(std::string_view text) {
  CidrParse p = parse_cidr(text);
  EXPECT_TRUE(p.ok()) << text;
  return p.cidr;
}

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// ---------------------------------------------------------------- address

TEST(Address, ParsesWhatInetPtonAccepts) {
  EXPECT_FALSE(ip("192.0.2.1").v6);
  EXPECT_EQ(ip("192.0.2.1").bytes[3], 1);
  EXPECT_TRUE(ip("2001:db8::1").v6);
  EXPECT_TRUE(ip("::ffff:192.0.2.1").v6);
  for (std::string_view bad : {"", "192.0.2", "192.0.2.256", "01.2.3.4", "1.2.3.4 ", " 1.2.3.4", "[::1]", "fe80::1%eth0",
                               "192.0.2.1/32", "example.com", "::1::2"})
    EXPECT_FALSE(parse_ip_address(bad)) << bad;
  // Nothing after an embedded NUL is ignored, and no text is too long to refuse.
  EXPECT_FALSE(parse_ip_address(std::string_view("1.2.3.4\0x", 9)));
  EXPECT_FALSE(parse_ip_address(std::string(100, '1')));
}

TEST(Address, TextIsInetNtopsForm) {
  EXPECT_EQ(address_text(ip("2001:0DB8:0:0::1")), "2001:db8::1");
  EXPECT_EQ(address_text(ip("192.0.2.7")), "192.0.2.7");
  EXPECT_EQ(cidr_text(net("2001:db8::/32")), "2001:db8::/32");
  EXPECT_EQ(cidr_text(net("192.0.2.7")), "192.0.2.7/32");
}

// The sockaddr the simulator's DNS and HTTPS servers bind to, filled from
// the parsed address (they each had an inet_pton into a sockaddr before).
TEST(Address, SocketAddressHoldsTheAddressAndPortInNetworkOrder) {
  const SocketAddress v4 = socket_address(ip("192.0.2.7"), 2525);
  ASSERT_EQ(v4.family(), AF_INET);
  EXPECT_EQ(v4.length, sizeof(sockaddr_in));
  const auto* in4 = reinterpret_cast<const sockaddr_in*>(v4.get());
  EXPECT_EQ(ntohs(in4->sin_port), 2525);
  EXPECT_EQ(ntohl(in4->sin_addr.s_addr), 0xC0000207u);
  const SocketAddress v6 = socket_address(ip("2001:db8::1"), 53);
  ASSERT_EQ(v6.family(), AF_INET6);
  EXPECT_EQ(v6.length, sizeof(sockaddr_in6));
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(v6.get());
  EXPECT_EQ(ntohs(in6->sin6_port), 53);
  char text[INET6_ADDRSTRLEN] = "";
  ASSERT_NE(::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text), nullptr);
  EXPECT_STREQ(text, "2001:db8::1");
  EXPECT_EQ(in6->sin6_scope_id, 0u);
  EXPECT_EQ(in6->sin6_flowinfo, 0u);
}

// The relay read `/08` as 8 and `10.0.0.1/8` as 10.0.0.0/8; the compiler
// refused both. The compiler's reading won (a leading zero is refused in an
// IPv4 part too, and a policy or configuration writing host bits most likely
// meant another network): one rule, the same errors everywhere.
TEST(Cidr, PrefixIsAPlainDecimalInRange) {
  EXPECT_EQ(net("10.0.0.0/8").prefix_len, 8);
  EXPECT_EQ(net("0.0.0.0/0").prefix_len, 0);
  EXPECT_EQ(net("::/0").prefix_len, 0);
  EXPECT_EQ(net("2001:db8::1").prefix_len, 128);
  for (std::string_view bad : {"10.0.0.0/08", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/+8", "10.0.0.0/ 8",
                               "10.0.0.0/8/8", "10.0.0.0/0x8", "10.0.0.0/1000", "::/0128"}) {
    CidrParse p = parse_cidr(bad);
    EXPECT_EQ(p.problem, CidrProblem::bad_prefix) << bad;
  }
  EXPECT_EQ(parse_cidr("10.0.0.0/33").max_prefix, 32);
  EXPECT_EQ(parse_cidr("::/129").max_prefix, 128);
  EXPECT_EQ(parse_cidr("10.0.0/8").problem, CidrProblem::not_an_address);
  EXPECT_EQ(parse_cidr("/8").problem, CidrProblem::not_an_address);
}

TEST(Cidr, HostBitsAreAnErrorThatNamesTheNetwork) {
  CidrParse p = parse_cidr("10.1.2.3/8");
  EXPECT_EQ(p.problem, CidrProblem::host_bits);
  EXPECT_EQ(cidr_text(p.cidr), "10.0.0.0/8");
  p = parse_cidr("2001:db8::1/32");
  EXPECT_EQ(p.problem, CidrProblem::host_bits);
  EXPECT_EQ(cidr_text(p.cidr), "2001:db8::/32");
  p = parse_cidr("192.0.2.128/25");
  EXPECT_TRUE(p.ok());
  EXPECT_EQ(parse_cidr("192.0.2.129/25").problem, CidrProblem::host_bits);
}

// The relay matched an IPv4-mapped client (::ffff:a.b.c.d) against IPv4
// networks; the live simulator's copy did not. A dual-stack socket reports
// IPv4 clients that way, so the relay's reading won.
TEST(Cidr, ContainsMatchesPrefixBitsAndMappedIpv4) {
  EXPECT_TRUE(contains(net("10.0.0.0/8"), ip("10.255.1.2")));
  EXPECT_FALSE(contains(net("10.0.0.0/8"), ip("11.0.0.0")));
  EXPECT_TRUE(contains(net("192.0.2.128/25"), ip("192.0.2.255")));
  EXPECT_FALSE(contains(net("192.0.2.128/25"), ip("192.0.2.127")));
  EXPECT_TRUE(contains(net("0.0.0.0/0"), ip("203.0.113.9")));
  EXPECT_FALSE(contains(net("0.0.0.0/0"), ip("2001:db8::1")));
  EXPECT_TRUE(contains(net("10.0.0.0/8"), ip("::ffff:10.1.2.3")));
  EXPECT_FALSE(contains(net("::/0"), ip("10.1.2.3")));
  EXPECT_TRUE(contains(net("::ffff:0:0/96"), ip("::ffff:10.1.2.3")));
  EXPECT_TRUE(contains(net("2001:db8::/33"), ip("2001:db8:7fff::1")));
  EXPECT_FALSE(contains(net("2001:db8::/33"), ip("2001:db8:8000::1")));
  EXPECT_TRUE(contains(net("::1"), ip("::1")));
  EXPECT_FALSE(contains(net("::1"), ip("::2")));
  EXPECT_EQ(unmapped(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
  EXPECT_EQ(unmapped(ip("::10.1.2.3")), ip("::10.1.2.3"));
}

// ------------------------------------------------------------------ quote

// The runtime's copy wrote a control byte as `?` and cut at 40 bytes, the
// CLI's cut at 80 bytes and left invalid UTF-8 raw; the compiler's reading
// (tlsp/diagnostic_text.h, now tlsp/base/quote.h) won: nothing is lost or
// reaches the terminal raw, and a cut never splits a character.
TEST(Quote, EscapesWhatATerminalWouldNotShow) {
  EXPECT_EQ(ticked("plain.example"), "`plain.example`");
  EXPECT_EQ(ticked(std::string_view("a\0b\x1b[31m\x7f", 9)), "`a\\x00b\\x1b[31m\\x7f`");
  EXPECT_EQ(ticked("\xff\xfe"), "`\\xff\\xfe`");
  EXPECT_EQ(ticked("b\xc3\xbc" "cher"), "`b\xc3\xbc" "cher`");
  EXPECT_EQ(ticked("a\xe2\x80\xae" "b"), "`a\\u{202e}b`");
  EXPECT_EQ(ticked("tab\there"), "`tab\\x09here`");
}

TEST(Quote, CutsAfterMaxCharactersOnACharacterBoundary) {
  EXPECT_EQ(ticked(std::string(300, 'a')), "`" + std::string(kMaxQuotedChars, 'a') + "...`");
  EXPECT_EQ(ticked("abcdef", 3), "`abc...`");
  EXPECT_EQ(ticked("abc", 3), "`abc`");
  EXPECT_EQ(ticked("\xc3\xbc\xc3\xbc\xc3\xbc", 2), "`\xc3\xbc\xc3\xbc...`");
}

// ------------------------------------------------------------ atomic file

TEST(AtomicFile, WritesReplacesAndLeavesNoTemporaryFile) {
  tlsp::testing_support::TempDir dir("tlsp-base");
  const std::string path = dir.file("table.tlsd");
  write_file_atomically(path, "first", 0644);
  EXPECT_EQ(read(path), "first");
  write_file_atomically(path, std::string(100000, 'x'), 0644);
  EXPECT_EQ(read(path), std::string(100000, 'x'));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  write_file_atomically(path, "", 0600);
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(read(path), "");
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) files += e.path().filename() == "table.tlsd" ? 1 : 100;
  EXPECT_EQ(files, 1u);
}

TEST(AtomicFile, ErrorsNameThePathAndTheReason) {
  tlsp::testing_support::TempDir dir("tlsp-base");
  const std::string path = dir.file("missing/table.tlsd");
  try {
    write_file_atomically(path, "x", 0644);
    FAIL() << "no error";
  } catch (const FileError& e) {
    EXPECT_EQ(e.error(), ENOENT);
    EXPECT_NE(std::string(e.what()).find("`" + path + "`: No such file or directory"), std::string::npos) << e.what();
  }
  // A directory in the way of the rename: the old entry stands, the temporary file is gone.
  fs::create_directories(dir.file("busy/sub"));
  EXPECT_THROW(write_file_atomically(dir.file("busy"), "x", 0644), FileError);
  EXPECT_TRUE(fs::is_directory(dir.file("busy/sub")));
  for (const auto& e : fs::directory_iterator(dir.path())) EXPECT_EQ(e.path().filename(), "busy");
}

// A write that fails half-way (here the file size limit, which holds for
// root too) leaves the old content and no temporary file, and the message
// names the file the caller asked for, not the hidden temporary one.
TEST(AtomicFile, AFailedWriteKeepsTheOldFileAndNamesIt) {
  tlsp::testing_support::TempDir dir("tlsp-base");
  const std::string path = dir.file("table.tlsd");
  write_file_atomically(path, "old", 0644);
  try {
    const tlsp::testing_support::FileSizeLimit limit(0);
    write_file_atomically(path, "new content", 0644);
    FAIL() << "no error";
  } catch (const FileError& e) {
    EXPECT_EQ(e.error(), EFBIG);
    EXPECT_EQ(std::string(e.what()), "cannot write `" + path + "`: " + std::strerror(EFBIG));
  }
  EXPECT_EQ(read(path), "old");
  EXPECT_EQ(tlsp::testing_support::directory_names(dir.path()), std::vector<std::string>{"table.tlsd"});
}

TEST(AtomicFile, PiecesRefuseOrTruncateAsAsked) {
  tlsp::testing_support::TempDir dir("tlsp-base");
  const std::string path = dir.file("envelope");
  write_file_synced(path, "long content", 0600, /*exclusive=*/true);
  EXPECT_THROW(write_file_synced(path, "x", 0600, /*exclusive=*/true), FileError);
  write_file_synced(path, "short", 0600, /*exclusive=*/false);
  EXPECT_EQ(read(path), "short");
  replace_file(path, dir.file("moved"));
  EXPECT_EQ(read(dir.file("moved")), "short");
  EXPECT_THROW(replace_file(path, dir.file("moved")), FileError);
  sync_directory(dir.path());
  EXPECT_THROW(sync_directory(dir.file("nosuch")), FileError);
}

// ------------------------------------------------------------ RFC 5322 date

// The relay's Received: line used strftime("%a, %d %b ..."), whose names
// follow the locale; the DSN's table of English names won (RFC 5322 §3.3
// names are English whatever the locale).
TEST(Rfc5322Date, EnglishNamesInUtc) {
  EXPECT_EQ(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
  EXPECT_EQ(rfc5322_date(1796623800), "Mon, 07 Dec 2026 06:10:00 +0000");
  EXPECT_EQ(rfc5322_date(951782400), "Tue, 29 Feb 2000 00:00:00 +0000");
  EXPECT_EQ(rfc5322_date(-1), "Wed, 31 Dec 1969 23:59:59 +0000");
}

TEST(Rfc5322Date, UnrepresentableTimesAreTheEpoch) {
  EXPECT_EQ(rfc5322_date(std::numeric_limits<int64_t>::max()), "Thu, 01 Jan 1970 00:00:00 +0000");
  EXPECT_EQ(rfc5322_date(std::numeric_limits<int64_t>::min()), "Thu, 01 Jan 1970 00:00:00 +0000");
}

}  // namespace

// Digests and hex (tlsp/base/digest.h): the known answers of FIPS 180-2's
// "abc", which sha256sum and sha512sum print too.
TEST(Digest, KnownAnswersAndHex) {
  using namespace tlsp::base;
  EXPECT_EQ(hex(digest(Digest::sha256, "abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex(digest(Digest::sha512, "abc")),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
            "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
  const std::array<uint8_t, 32> d = sha256("abc");
  EXPECT_EQ(hex(std::span<const uint8_t>(d)), hex(digest(Digest::sha256, "abc")));
  EXPECT_EQ(hex(std::string_view("\x00\x0f\xf0\xff", 4)), "000ff0ff");
  EXPECT_EQ(hex(std::string_view()), "");
  EXPECT_EQ(digest(Digest::sha256, "").size(), 32u);
}
