// The console's static files (page, script, styles, the sample trace), built into the
// control plane binary by console/embed_assets.cmake so it serves them with nothing
// installed beside it.
#ifndef CHAINSCALE_CONSOLE_CONSOLE_ASSETS_H_
#define CHAINSCALE_CONSOLE_CONSOLE_ASSETS_H_

#include "absl/strings/string_view.h"

namespace chainscale {

struct ConsoleAsset {
  absl::string_view name;          // "index.html", "console.js", ...
  absl::string_view content_type;  // with charset for text
  absl::string_view body;
};

// The asset called `name`, or null.
const ConsoleAsset* FindConsoleAsset(absl::string_view name);

}  // namespace chainscale

#endif  // CHAINSCALE_CONSOLE_CONSOLE_ASSETS_H_
