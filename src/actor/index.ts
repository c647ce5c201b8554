/**
 * The actor loss: a policy loss combined with an entropy bonus and a KL loss, as verl's actor does.
 *
 * @module
 */
export {};
