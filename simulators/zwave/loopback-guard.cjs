// Preloaded (node --require) into both Z-Wave JS processes of the simulator, so that
// nothing but loopback TCP leaves them: mDNS advertising is replaced by a stub and any
// UDP socket (multicast included) is refused and recorded. The mock's control channel
// reports the record, so the tests can check it.
"use strict";
const Module = require("node:module");
const dgram = require("node:dgram");

const record = { mdnsStubbed: true, udpAttempts: 0, mdnsAdvertisements: 0 };
globalThis.__lockbridgeLoopbackGuard = record;

const mdnsStub = {
	getResponder() {
		return {
			createService() {
				return {
					async advertise() {
						record.mdnsAdvertisements += 1;
					},
					async end() {},
					async destroy() {},
					on() {},
				};
			},
			async shutdown() {},
		};
	},
};

const originalLoad = Module._load;
Module._load = function load(request, parent, isMain) {
	if (request === "@homebridge/ciao" || request === "mdns-server") {
		return mdnsStub;
	}
	return originalLoad.call(this, request, parent, isMain);
};

dgram.createSocket = function refuseUdp() {
	record.udpAttempts += 1;
	throw new Error("lockbridge simulator: UDP is disabled (loopback TCP only)");
};
Module.syncBuiltinESMExports();
