#include "src/core/ids.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <regex>
#include <set>
#include <string>

namespace crmbridge {
namespace {

TEST(IdsTest, RandomUuidsAreVersion4) {
  const std::regex v4("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = NewUuid();
    EXPECT_TRUE(std::regex_match(id, v4)) << id;
    EXPECT_TRUE(seen.insert(id).second) << "repeated: " << id;
  }
}

// Random bits are drawn a block at a time: a child process must not mint the ids its parent mints
// next from the same block.
TEST(IdsTest, AForkedChildMintsOtherIdsThanItsParent) {
  NewUuid();  // the block is drawn, and has more in it
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const std::string id = NewUuid() + NewTimeOrderedUuid();
    const ssize_t n = write(pipe_fds[1], id.data(), id.size());
    _exit(n == static_cast<ssize_t>(id.size()) ? 0 : 1);
  }
  close(pipe_fds[1]);
  const std::string parents = NewUuid() + NewTimeOrderedUuid();
  std::string childs(parents.size(), '\0');
  size_t got = 0;
  while (got < childs.size()) {
    const ssize_t n = read(pipe_fds[0], childs.data() + got, childs.size() - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_EQ(got, childs.size());
  EXPECT_NE(childs.substr(0, 36), parents.substr(0, 36));
  EXPECT_NE(childs.substr(36 + 19), parents.substr(36 + 19));  // the random tail of a version 7
}

TEST(IdsTest, TimeOrderedUuidsAreVersion7AndSortInTheOrderTheyWereMade) {
  const std::regex v7("^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  const int64_t before = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  // Far more than 4096 (the counter's range) in a few milliseconds: the counter carries over.
  std::string previous;
  for (int i = 0; i < 20000; ++i) {
    const std::string id = NewTimeOrderedUuid();
    ASSERT_TRUE(std::regex_match(id, v7)) << id;
    ASSERT_LT(previous, id) << "made after " << previous;
    previous = id;
  }
  // The first 48 bits are the time in milliseconds, no earlier than when the loop began.
  const std::string first = NewTimeOrderedUuid();
  const int64_t ms = std::stoll(first.substr(0, 8) + first.substr(9, 4), nullptr, 16);
  EXPECT_GE(ms, before);
  EXPECT_LT(ms, before + 60'000);
}

TEST(IdsTest, AUuidParsedIsFormattedBackToTheSameText) {
  for (const std::string& id : {NewUuid(), NewTimeOrderedUuid(),
                                std::string("d3b1c9b7-0e4f-ed11-bba2-000d3a2b5c6f"),
                                std::string("00000000-0000-0000-0000-000000000000"),
                                std::string("ffffffff-ffff-ffff-ffff-ffffffffffff")}) {
    unsigned char bytes[16];
    ASSERT_TRUE(ParseUuid(id, bytes)) << id;
    EXPECT_EQ(FormatUuid(bytes), id);
  }
  unsigned char bytes[16];
  ASSERT_TRUE(ParseUuid("01234567-89ab-cdef-0011-223344556677", bytes));
  EXPECT_EQ(bytes[0], 0x01);
  EXPECT_EQ(bytes[7], 0xef);
  EXPECT_EQ(bytes[15], 0x77);
}

TEST(IdsTest, ParsesOnlyTheTextFormatUuidWrites) {
  unsigned char bytes[16];
  for (const std::string& not_one : {
           std::string(""), std::string("c1"), std::string("1000"),
           std::string("D3B1C9B7-0E4F-ED11-BBA2-000D3A2B5C6F"),   // uppercase
           std::string("d3b1c9b70e4fed11bba2000d3a2b5c6f"),       // no dashes
           std::string("{d3b1c9b7-0e4f-ed11-bba2-000d3a2b5c6f}"), // braces
           std::string("d3b1c9b7-0e4f-ed11-bba2-000d3a2b5c6f0"),  // one digit more
           std::string("d3b1c9b7-0e4f-ed11-bba2-000d3a2b5c6"),    // one digit less
           std::string("d3b1c9b7-0e4fed11--bba2-000d3a2b5c6f"),   // a dash moved
           std::string("g3b1c9b7-0e4f-ed11-bba2-000d3a2b5c6f"),   // not hex
           std::string("d3b1c9b7-0e4f-ed11-bba2-000d3a2b5c6\0", 36)}) {
    EXPECT_FALSE(ParseUuid(not_one, bytes)) << not_one;
  }
}

}  // namespace
}  // namespace crmbridge
