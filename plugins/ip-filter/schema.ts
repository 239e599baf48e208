const cidrs = { type: 'array', items: { type: 'string', minLength: 1 }, default: [] } as const

export const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    allow: { ...cidrs, description: 'CIDRs allowed; empty (and no allowFile) means every address' },
    deny: { ...cidrs, description: 'CIDRs denied; deny wins over allow' },
    allowFile: { type: 'string', minLength: 1, description: 'A file of CIDRs to allow, one per line (# comments); relative to the config file' },
    denyFile: { type: 'string', minLength: 1, description: 'A file of CIDRs to deny, one per line' },
    status: { type: 'integer', enum: [403, 404], default: 403, description: 'Status of the denial (404 hides that the route exists)' }
  }
} as const

export interface IpFilterConfig { allow: string[], deny: string[], allowFile?: string, denyFile?: string, status: number }

/** What prepare() hands to every worker: the set ids in the shared IP table (-1: no list). */
export interface IpFilterPrepared { allow: number, deny: number }
