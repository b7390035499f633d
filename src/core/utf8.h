// UTF-8 as the systems' text must be: what is valid, and where a text may be cut.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace crmbridge {

// The length of the valid UTF-8 sequence starting at text[i] (1 to 4), or 0 when there is none
// (a stray continuation byte, an overlong form, a surrogate, past U+10FFFF, or cut short).
size_t Utf8SequenceAt(std::string_view text, size_t i);

// Whether all of `text` is valid UTF-8.
bool IsValidUtf8(std::string_view text);

// The longest prefix of `text` of at most `max_bytes` that does not end inside a character.
std::string_view Utf8Prefix(std::string_view text, size_t max_bytes);

// `text` made safe to show on one line of a terminal, a log or JSON: valid UTF-8 and tabs as they
// are; line breaks as \n and \r, other control characters and each byte of an invalid UTF-8
// sequence as \xNN. A value holding a line break cannot forge a log line of its own, and bytes
// that are not UTF-8 cannot garble a terminal or make a JSON document unwritable.
std::string PrintableText(std::string_view text);

// `text` with its ASCII letters lower-cased; every other byte (UTF-8 included) as it is.
std::string LowerAscii(std::string text);

}  // namespace crmbridge
