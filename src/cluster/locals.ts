// The roles this node runs as a home (timelines, groups, contacts), as routing reaches them when
// the ring says "here". Routing exists before them (they send through it), so they are set once,
// right after they are made; a call that arrives before that is answered unavailable.
import { UnavailableError } from '../protocol/errors.ts';
import type { Home } from '../home/home.ts';
import type { Groups } from '../group-home/groups.ts';
import type { Social } from '../social/social.ts';
import type { HomeSide } from './home-calls.ts';

export class LocalRoles implements HomeSide {
  #side: HomeSide | undefined;

  set(side: HomeSide): void {
    if (this.#side) throw new Error('the local roles are set once');
    this.#side = side;
  }

  get local(): Home {
    return this.#get().local;
  }

  get groups(): Groups {
    return this.#get().groups;
  }

  get social(): Social {
    return this.#get().social;
  }

  #get(): HomeSide {
    if (!this.#side) throw new UnavailableError('this node is starting');
    return this.#side;
  }
}
