// Minimal stand-in for tagcomplete's javascript: A1111's page helpers (onUiLoaded, gradioApp, opts) and the
// extension's own route; a list of matching tags appears under the prompt while typing.
let tacTags = [];

function tacShow(textArea, word) {
  let list = gradioApp().querySelector("#tac-results");
  if (!list) {
    list = document.createElement("ul");
    list.id = "tac-results";
    list.className = "autocompleteResults";
    textArea.parentNode.appendChild(list);
  }
  list.innerHTML = "";
  if (!word) return;
  const found = tacTags.filter((tag) => tag.startsWith(word)).slice(0, opts.tac_maxResults);
  for (const tag of found) {
    const item = document.createElement("li");
    item.textContent = tag;
    list.appendChild(item);
  }
}

onUiLoaded(async () => {
  if (!opts.tac_active) return;
  const csv = await (await fetch("/tacapi/v1/tags")).text();
  tacTags = csv.split("\n").filter(Boolean).map((line) => line.split(",")[0]);
  const textArea = gradioApp().querySelector("#txt2img_prompt textarea");
  textArea.addEventListener("input", () => {
    const words = textArea.value.split(/[\s,]+/);
    tacShow(textArea, words[words.length - 1]);
  });
});
