// The header lines of tlsp's own files and their bounded read
// (tlsp/base/header_fields.h, tlsp/base/atomic_file.h).
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "test_support.h"
#include "tlsp/base/atomic_file.h"
#include "tlsp/base/header_fields.h"

namespace tlsp::base {
namespace {

TEST(HeaderFields, TakesExactlyKeyColonSpaceValueLines) {
  std::string_view text = "id: 42\nat: 7\n\nbody";
  std::string_view v;
  EXPECT_FALSE(take_header_field(text, "at", v));  // the order is fixed
  ASSERT_TRUE(take_header_field(text, "id", v));
  EXPECT_EQ(v, "42");
  ASSERT_TRUE(take_header_field(text, "at", v));
  EXPECT_EQ(v, "7");
  EXPECT_EQ(text, "\nbody");
  for (std::string_view bad : {"id:42\n", "id : 42\n", "ids: 42\n", "id: 42", "Id: 42\n"}) {
    std::string_view t = bad;
    EXPECT_FALSE(take_header_field(t, "id", v)) << bad;
    EXPECT_EQ(t, bad);
  }
  std::string_view long_line = "id: 123456789\n";
  EXPECT_FALSE(take_header_field(long_line, "id", v, 8));
  EXPECT_TRUE(take_header_field(long_line, "id", v, 13));
}

TEST(HeaderFields, DecimalNumbersFitInSixtyFourBits) {
  int64_t v = -1;
  EXPECT_TRUE(parse_decimal_i64("0", v));
  EXPECT_EQ(v, 0);
  EXPECT_TRUE(parse_decimal_i64("999999999999999999", v));
  EXPECT_EQ(v, 999999999999999999);
  for (std::string_view bad : {"", "-1", "+1", " 1", "1 ", "1x", "1000000000000000000"})
    EXPECT_FALSE(parse_decimal_i64(bad, v)) << bad;
}

TEST(BoundedRead, ReadsUpToTheLimitAndNeverThroughALink) {
  testing_support::TempDir dir{"tlsp-bounded-read"};
  const std::string f = dir.write("f", "0123456789");
  BoundedRead r = read_file_bounded(f, 10);
  EXPECT_EQ(r.status, BoundedRead::Status::ok);
  EXPECT_EQ(r.text, "0123456789");
  r = read_file_bounded(f, 9);
  EXPECT_EQ(r.status, BoundedRead::Status::too_large);
  EXPECT_TRUE(r.text.empty());
  EXPECT_EQ(read_file_bounded(dir.file("none"), 10).status, BoundedRead::Status::missing);
  ASSERT_EQ(::symlink(f.c_str(), dir.file("link").c_str()), 0);
  r = read_file_bounded(dir.file("link"), 10);
  EXPECT_EQ(r.status, BoundedRead::Status::unreadable);
  EXPECT_EQ(r.error, ELOOP);
}

}  // namespace
}  // namespace tlsp::base
