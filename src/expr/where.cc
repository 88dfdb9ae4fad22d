#include "expr/where.h"

#include "expr/program.h"

namespace sluice::expr {

Result<WhereFilter> WhereFilter::Compile(std::string_view expression) {
  SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<Program> program, ParseWhere(expression));
  return WhereFilter(std::move(program));
}

bool WhereFilter::Matches(const EventFields& event) const { return EvaluateWhere(*program_, event); }

const std::string& WhereFilter::text() const { return program_->text; }

}  // namespace sluice::expr
