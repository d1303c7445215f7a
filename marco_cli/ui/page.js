// marco's tree page: builds the tree from the embedded record with textContent only.
(() => {
const R = JSON.parse(document.getElementById('record').textContent);
const t0 = performance.now();
const nodes = new Map(R.nodes.map(n => [n.id, n]));
const kids = new Map();
for (const n of R.nodes) if (n.parent !== null) (kids.get(n.parent) || kids.set(n.parent, []).get(n.parent)).push(n);
const at = new Map();
for (const r of R.rollouts) (at.get(r.node) || at.set(r.node, []).get(r.node)).push(r);
const onPath = new Set(R.path);
let best = null;
for (const r of R.rollouts) if (r.finished && (best === null || r.reward > best.reward)) best = r;
const bestPath = new Set();
if (best && best.id !== R.chosen_rollout) for (let id = best.node; id !== null; id = nodes.get(id).parent) bestPath.add(id);
const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };
const tone = c => c === null ? 'refl' : c >= 0.8 ? 'hi' : c >= 0.6 ? 'mid' : 'lo';
const flat = s => s.replace(/\s+/g, ' ').trim();
function label(n) {
  const box = el('span', 'label');
  const shown = n.id === 0 ? R.question : n.text;
  const text = el('span', 'text ' + tone(n.id === 0 ? 1 : n.confidence), (n.reflection ? '\u21ba ' : '') + (flat(shown).slice(0, 160) || '(empty)'));
  text.title = shown;
  box.append(text);
  const q = n.visits ? n.value.toFixed(2) : '-';
  const c = n.confidence === null ? '-' : n.confidence.toFixed(2);
  box.append(el('span', 'stats', `n=${n.visits} q=${q} c=${c}` + ((at.get(n.id) || []).length ? ` \u00b7 ${(at.get(n.id)).length} rollout(s)` : '')));
  if (n.terminal) box.append(el('span', 'mark', '\u25a0'));
  if ((n.refuted || []).length) box.append(el('span', 'mark lo refuted', '\u2717 ' + n.refuted.join('; ')));
  else if (typeof n.judged === 'number') box.append(el('span', 'mark hi judged', '\u2713 P(Yes) ' + n.judged.toFixed(2)));
  if (n.pruned) box.append(el('span', 'mark lo pruned', '\u2702 pruned at value ' + n.value.toFixed(2)));
  if (onPath.has(n.id) && n.id !== 0) box.append(el('span', 'mark', '\u25c0 answer'));
  if (bestPath.has(n.id) && n.id !== 0) box.append(el('span', 'mark', '\u2605 best reward'));
  return box;
}
function build(n) {
  const children = (kids.get(n.id) || []).slice().sort((a, b) => b.visits - a.visits || a.id - b.id);
  const li = el('li');
  let holder;
  if (children.length) {
    holder = el('details', 'node');
    holder.open = onPath.has(n.id);
    const summary = el('summary');
    summary.append(label(n));
    holder.append(summary);
    const ul = el('ul');
    for (const k of children) ul.append(build(k));
    holder.append(ul);
  } else {
    holder = el('div', 'node leaf');
    holder.append(label(n));
  }
  holder.dataset.id = n.id;
  if (onPath.has(n.id)) holder.classList.add('on-path');
  if (bestPath.has(n.id)) holder.classList.add('best-reward');
  holder.querySelector('.label').addEventListener('click', () => select(n.id));
  li.append(holder);
  return li;
}
function select(id) {
  document.querySelectorAll('.selected').forEach(e => e.classList.remove('selected'));
  const holder = document.querySelector(`.node[data-id="${id}"]`);
  holder.classList.add('selected');
  for (let p = holder.parentElement; p; p = p.parentElement) if (p.tagName === 'DETAILS') p.open = true;
  const panel = document.getElementById('rollouts');
  panel.replaceChildren();
  const n = nodes.get(id);
  panel.append(el('h2', '', `Node ${id}` + (id === 0 ? ' (the question)' : '')));
  panel.append(el('pre', 'node-text', id === 0 ? R.question : n.text));
  const list = at.get(id) || [];
  panel.append(el('div', 'meta', list.length ? `${list.length} rollout(s) started here` : 'no rollout started here'));
  for (const r of list) {
    const box = el('div', 'rollout');
    box.dataset.rollout = r.id;
    box.append(el('div', 'meta', `rollout ${r.id} \u00b7 reward ${r.reward === null ? '-' : r.reward.toFixed(3)} \u00b7 ${r.status || (r.finished ? 'finished' : 'cut off')} \u00b7 ${r.tokens} tokens` + (typeof r.judged === 'number' ? ` \u00b7 verifier P(Yes) ${r.judged.toFixed(2)}` : '') + (r.id === R.chosen_rollout ? ' \u00b7 the answer' : '')));
    box.append(el('div', '', 'answer: ' + (r.answer || '(no answer)')));
    box.append(el('pre', '', r.text));
    panel.append(box);
  }
}
const tree = el('ul', 'top');
tree.append(build(nodes.get(0)));
document.getElementById('tree').append(tree);
document.getElementById('thought').textContent = R.thought || '(no <Thought> block)';
document.getElementById('output').textContent = R.answer || '(no answer)';
const open = /^#node-(\d+)$/.exec(location.hash);
if (open && nodes.has(+open[1])) document.querySelector(`.node[data-id="${open[1]}"] .label`).click();
document.body.dataset.renderMs = (performance.now() - t0).toFixed(1);
document.body.dataset.ready = 'yes';
})();
