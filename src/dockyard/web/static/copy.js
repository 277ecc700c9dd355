// Copy buttons for the pull commands: shown only where this script runs and the clipboard is
// there to write to; each copies the text of the element its data-copy-from names.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  if (!navigator.clipboard) return;
  for (const button of document.querySelectorAll("button[data-copy-from]")) {
    const source = document.getElementById(button.dataset.copyFrom);
    if (!source) continue;
    const label = button.firstChild.textContent;
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(source.textContent);
        button.firstChild.textContent = "Copied";
      } catch {
        button.firstChild.textContent = "Copy failed";
      }
      setTimeout(() => { button.firstChild.textContent = label; }, 2000);
    });
  }
});
