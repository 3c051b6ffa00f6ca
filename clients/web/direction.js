// What a higher level of the cascade directs this screen to show (docs/api.md, "Control from
// above"), applied to the grid of tiles:
// - roll call: the venue named comes to the main view: its tiles first (`called`), the first
//   of them across the top of the grid (`main`);
// - lock: the same, and it stays there until unlocked (a roll call meanwhile does not move it);
// - layout: the grid's shape — "3x3" or "3" (columns), "1+5" (one main view over five
//   columns), "auto" (columns from the number of tiles, as without direction).
// A venue is named as the console names it: a node (every tile whose tracks come from that
// node, `source.node`) or a participant's name.

export class Direction {
  constructor(grid) {
    this.grid = grid;
    this.called = null;    // venue of the last roll call
    this.locked = null;    // venue the view is locked on
    this.layout = 'auto';
  }

  apply(msg) {
    switch (msg.type) {
      case 'roll_call': this.called = msg.venue; break;
      case 'view_locked': this.locked = msg.venue; break;
      case 'view_unlocked': this.locked = null; break;
      case 'layout': this.layout = String(msg.layout || 'auto'); break;
      default: return;
    }
    this.render();
  }

  // The venue in the main view, if any.
  main() {
    return this.locked || this.called;
  }

  static matches(tile, venue) {
    return tile.dataset.node === venue || tile.dataset.venue === venue
      || tile.querySelector('.tile-name')?.textContent === venue;
  }

  // Marks the main view's tiles and sets the columns; cheap, so run on every grid change.
  render() {
    const tiles = [...this.grid.children].filter((t) => !t.hidden);
    const venue = this.main();
    let mains = venue ? tiles.filter((t) => Direction.matches(t, venue)) : [];
    const oneOver = /^1\+(\d+)$/.exec(this.layout);
    if (oneOver && mains.length === 0 && tiles.length > 0) mains = [tiles[0]];
    for (const t of tiles) {
      t.classList.toggle('called', mains.includes(t));
      t.classList.toggle('main', mains[0] === t);
      t.classList.toggle('locked', Boolean(this.locked) && mains.includes(t));
    }
    const fixed = /^(\d+)(?:x\d+)?$/.exec(this.layout);
    const n = tiles.length - (oneOver && mains.length ? 1 : 0);
    const cols = oneOver ? Number(oneOver[1])
      : fixed ? Number(fixed[1])
        : n <= 1 ? 1 : n <= 4 ? 2 : n <= 9 ? 3 : 4;
    this.grid.style.setProperty('--cols', String(Math.max(1, Math.min(cols, 8))));
    this.grid.dataset.layout = this.layout;
    this.grid.dataset.main = venue || '';
  }
}
