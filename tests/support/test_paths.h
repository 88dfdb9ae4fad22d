// Where the source and build trees are, for tests that read committed test data or start build/sluice.
// Kept out of compile definitions so that test objects do not depend on the checkout's path (a shared compiler
// cache then serves every worktree).
#pragma once

namespace sluice::testing {

/// The source tree (the repository root), e.g. "/work/main".
const char* SourceDir();
/// The CMake build tree, e.g. "/work/main/build".
const char* BinaryDir();

}  // namespace sluice::testing
