// A customer as the mocks seed it into more than one system: what tells it apart there (the
// company's website domain, each person's email), so that two mocks can start out holding some of
// the same customers, as two systems do when they are first connected.
#pragma once

#include <string>
#include <vector>

namespace crmbridge::mocks {

struct SeedCustomer {
  struct Person {
    std::string first_name, last_name, email;
  };
  std::string name;    // the company's name
  std::string domain;  // its website's domain ("bygg1.example.se")
  std::string city;
  std::vector<Person> people;
};

}  // namespace crmbridge::mocks
