// Hints for a word that is not one of the known ones: the nearest known word (at most two edits
// away), else the whole list.
#pragma once

#include <set>
#include <string>

namespace crmbridge {

// "did you mean 'pipeline'?", or "expected one of: a, b, c" when nothing is near.
std::string DidYouMean(const std::string& word, const std::set<std::string>& known);

}  // namespace crmbridge
