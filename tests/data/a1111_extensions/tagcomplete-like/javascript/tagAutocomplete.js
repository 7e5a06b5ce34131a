// Minimal stand-in for tagcomplete's javascript: A1111's page helpers (onUiLoaded, gradioApp, opts, titles),
// the file= route, A1111's selectors ("#..._prompt > label > textarea", "#setting_sd_model_checkpoint"); a list
// of matching tags appears under the txt2img and img2img prompts while typing.
let tacTags = [];
titles = {...titles, "Generate": "Tag autocomplete is active"};  // as sd-dynamic-prompts merges its hints

function tacShow(textArea, word) {
  let list = textArea.parentNode.querySelector(".autocompleteResults");
  if (!list) {
    list = document.createElement("ul");
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

async function tacReadFile(path) {
  const response = await fetch(`file=${path}?${new Date().getTime()}`);
  if (response.status !== 200) throw new Error(`file=${path}: ${response.status}`);
  return response.text();
}

onUiLoaded(async () => {
  if (!opts.tac_active) return;
  const base = await tacReadFile("tmp/tagAutocompletePath.txt");
  const csv = await tacReadFile(`${base}/${opts.tac_tagFile}`);
  tacTags = csv.split("\n").filter(Boolean).map((line) => line.split(",")[0]);
  window.tacModelSelect = gradioApp().querySelector("#setting_sd_model_checkpoint");
  // img2img's prompt is looked up at load too: A1111's page has every tab's elements from the start
  for (const selector of ["#txt2img_prompt > label > textarea", "#img2img_prompt > label > textarea"]) {
    const textArea = gradioApp().querySelector(selector);
    textArea.addEventListener("input", () => {
      const words = textArea.value.split(/[\s,]+/);
      tacShow(textArea, words[words.length - 1]);
    });
  }
});
