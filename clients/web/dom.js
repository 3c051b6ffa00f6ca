// Small DOM helpers shared by the client's modules.

export const $ = (id) => document.getElementById(id);

// el('div', {class: 'x', 'data-id': 1, hidden: true}, child, 'text') — attributes named
// data-* and aria-* are set as attributes, everything else as properties.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'class') node.className = value;
    else if (key.startsWith('data-') || key.startsWith('aria-')) node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children);
  return node;
}

// Shows `text` in the element, or hides the element when there is none.
export function setText(id, text) {
  const node = $(id);
  node.textContent = text || '';
  node.hidden = !text;
}
