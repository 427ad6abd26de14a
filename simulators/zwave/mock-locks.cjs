// zwave-js mock-server config: a mock controller and simulated door locks.
//
// The locks come from $LOCKBRIDGE_ZWAVE_LOCKS (JSON, written by simulators/zwave/stack.py).
// Behaviours added to zwave-js' own mocks: Battery, Notification Get, door/bolt status in
// Door Lock reports, optional multi-code User Code sets, masked code reads, offline nodes,
// and a loopback control channel (lock-control.cjs) through which the harness plays
// the person at the door: keypad entries checked against the node's user codes, manual
// operation, door, battery, codes programmed at the lock, and the device's true slots.
"use strict";

const { openControlChannel } = require("./lock-control.cjs");

// A stick survives its host going away: when zwave-server is stopped while the mock
// controller waits for its ACK, the mock's expectation fails with an unhandled rejection.
process.on("unhandledRejection", (reason) => {
	const message = String(reason?.message ?? reason);
	const stack = String(reason?.stack ?? "");
	if (message.includes("did not respond with an ACK") || stack.includes("expectHostACK")) {
		console.log(`host went away: ${message}`);
		return;
	}
	console.error(reason);
	process.exit(1);
});

module.exports.default = function mockConfig({ require: mockRequire }) {
	const cc = mockRequire("@zwave-js/cc");
	const core = mockRequire("@zwave-js/core");
	const testing = mockRequire("@zwave-js/testing");
	const { CommandClasses } = core;
	const specs = JSON.parse(process.env.LOCKBRIDGE_ZWAVE_LOCKS || "[]");

	const ACCESS_CONTROL = 0x06;
	const HOME_SECURITY = 0x07;
	const ACK = 0x06;
	const NAK = 0x15;
	const CAN = 0x18;
	const SOF = 0x01;
	const USER = {
		status: (id) => `UserCode_userIdStatus_${id}`,
		code: (id) => `UserCode_userCode_${id}`,
	};
	const DOOR_MODE = "DoorLock_currentMode";
	const OFFLINE = "lockbridge_offline";
	const FRAMES = "lockbridge_frames";
	const LOSE = "lockbridge_lose";
	// zwave-js' MockControllerStateKeys.CommunicationState (not exported by the package).
	const COMMUNICATION_STATE = "communicationState";

	// The driver may send its ACK and its next frame in one TCP chunk, but the mock
	// controller expects one serial frame per chunk: split the stream again.
	let pending = new Uint8Array(0);
	let lastData = 0;
	const resplitHostData = {
		async onHostData(controller, data) {
			// Like a serial receiver, give up on a frame that stays incomplete (its host died).
			if (Date.now() - lastData > 1500) pending = new Uint8Array(0);
			lastData = Date.now();
			const joined = new Uint8Array(pending.length + data.length);
			joined.set(pending, 0);
			joined.set(data, pending.length);
			let offset = 0;
			while (offset < joined.length) {
				const head = joined[offset];
				if (head === NAK) {
					// zwave-js opens the port with a NAK: a new host. Forget what the
					// previous one left half done, as a stick does when it is re-opened.
					controller.state.set(COMMUNICATION_STATE, 0); // Idle
					controller.expectedHostACKs.splice(0);
				}
				if (head === ACK || head === NAK || head === CAN) {
					void controller.serialOnData(head);
					offset += 1;
				} else if (head === SOF) {
					if (offset + 2 > joined.length) break;
					const end = offset + joined[offset + 1] + 2;
					if (end > joined.length) break;
					void controller.serialOnData(joined.slice(offset, end));
					offset = end;
				} else {
					offset += 1; // line noise: the driver resynchronises on the next SOF
				}
			}
			pending = joined.slice(offset);
			return true;
		},
	};

	function send(node, ccInstance) {
		// An offline lock may still be used at the door, but nothing it says gets through.
		if (node.state.get(OFFLINE)) return Promise.resolve();
		return node.sendToController(
			testing.createMockZWaveRequestFrame(ccInstance, { ackRequested: false }),
		);
	}

	function operationReport(controller, node) {
		const mode = node.state.get(DOOR_MODE) ?? cc.DoorLockMode.Secured;
		const door = node.state.get("lockbridge_door") ?? "closed";
		return new cc.DoorLockCCOperationReport({
			nodeId: controller.ownNodeId,
			currentMode: mode,
			targetMode: mode,
			duration: new core.Duration(0, "seconds"),
			outsideHandlesCanOpenDoor: [true, true, true, true],
			insideHandlesCanOpenDoor: [true, true, true, true],
			doorStatus: door,
			boltStatus: mode === cc.DoorLockMode.Secured ? "locked" : "unlocked",
			latchStatus: door,
		});
	}

	function lockBehaviors(spec) {
		const countFrames = {
			transformIncomingCC(controller, self, receivedCC) {
				if (!self.state.get(OFFLINE)) self.state.set(FRAMES, (self.state.get(FRAMES) ?? 0) + 1);
				return receivedCC;
			},
		};
		const offline = {
			handleCC(controller, self) {
				if (self.state.get(OFFLINE)) return { action: "stop" };
				const lose = self.state.get(LOSE) ?? 0;
				if (lose > 0) {
					// Radio trouble: the frame was acknowledged, then lost.
					self.state.set(LOSE, lose - 1);
					return { action: "stop" };
				}
			},
		};
		const doorLockReport = {
			handleCC(controller, self, receivedCC) {
				if (receivedCC instanceof cc.DoorLockCCOperationGet) {
					return { action: "sendCC", cc: operationReport(controller, self) };
				}
				if (receivedCC instanceof cc.DoorLockCCOperationSet) {
					self.state.set(DOOR_MODE, receivedCC.mode);
					// Like real locks, report the remote operation as an Access Control event.
					const secured = receivedCC.mode === cc.DoorLockMode.Secured;
					setImmediate(() => void send(self, accessControl(controller, secured ? 0x03 : 0x04)));
					return { action: "ok" };
				}
			},
		};
		const battery = {
			handleCC(controller, self, receivedCC) {
				if (receivedCC instanceof cc.BatteryCCGet) {
					const level = self.state.get("lockbridge_battery") ?? spec.battery ?? 90;
					return {
						action: "sendCC",
						cc: new cc.BatteryCCReport({ nodeId: controller.ownNodeId, level }),
					};
				}
			},
		};
		const notificationGet = {
			handleCC(controller, self, receivedCC) {
				if (receivedCC instanceof cc.NotificationCCGet) {
					return {
						action: "sendCC",
						cc: new cc.NotificationCCReport({
							nodeId: controller.ownNodeId,
							notificationType: receivedCC.notificationType ?? ACCESS_CONTROL,
							notificationEvent: 0,
						}),
					};
				}
			},
		};
		const userCodeCapabilities = {
			handleCC(controller, self, receivedCC) {
				if (receivedCC instanceof cc.UserCodeCCCapabilitiesGet) {
					return {
						action: "sendCC",
						cc: new cc.UserCodeCCCapabilitiesReport({
							nodeId: controller.ownNodeId,
							supportsAdminCode: false,
							supportsAdminCodeDeactivation: false,
							supportsUserCodeChecksum: false,
							supportsMultipleUserCodeReport: false,
							supportsMultipleUserCodeSet: !!spec.bulk,
							supportedUserIDStatuses: [
								cc.UserIDStatus.Available,
								cc.UserIDStatus.Enabled,
								cc.UserIDStatus.Disabled,
							],
							supportedKeypadModes: [cc.KeypadMode.Normal],
							supportedASCIIChars: "0123456789",
						}),
					};
				}
			},
		};
		const userCodeRules = {
			handleCC(controller, self, receivedCC) {
				if (receivedCC instanceof cc.UserCodeCCExtendedUserCodeSet) {
					// Like a real lock: a code already in another slot is refused.
					for (const entry of receivedCC.userCodes) {
						if (entry.userIdStatus === cc.UserIDStatus.Available) continue;
						const code = String(entry.userCode);
						if (findSlot(self, spec, code, entry.userId) !== undefined) {
							void send(self, accessControl(controller, 0x0f, entry.userId));
							return { action: "fail" };
						}
					}
				}
				if (receivedCC instanceof cc.UserCodeCCGet && spec.masked) {
					const id = receivedCC.userId;
					const status = self.state.get(USER.status(id)) ?? cc.UserIDStatus.Available;
					const code = self.state.get(USER.code(id));
					return {
						action: "sendCC",
						cc: new cc.UserCodeCCReport({
							nodeId: controller.ownNodeId,
							userId: id,
							userIdStatus: id > spec.slots ? cc.UserIDStatus.StatusNotAvailable : status,
							userCode: code ? "*".repeat(String(code).length) : undefined,
						}),
					};
				}
			},
		};
		// The first behaviour that answers wins; zwave-js' own mocks come after these.
		return [
			countFrames,
			offline,
			userCodeCapabilities,
			userCodeRules,
			notificationGet,
			battery,
			doorLockReport,
		];
	}

	function commandClasses(spec) {
		const list = [
			{ ccId: CommandClasses["Manufacturer Specific"], version: 2 },
			{ ccId: CommandClasses.Version, version: 3 },
			{ ccId: CommandClasses["Door Lock"], version: 4 },
			{ ccId: CommandClasses["User Code"], version: 2, numUsers: spec.slots },
			{ ccId: CommandClasses.Battery, version: 1 },
			{
				ccId: CommandClasses.Notification,
				version: 8,
				supportsV1Alarm: false,
				notificationTypesAndEvents: {
					[ACCESS_CONTROL]: [1, 2, 3, 4, 5, 6, 11, 13, 14, 15, 19, 22, 23],
					[HOME_SECURITY]: [3],
				},
			},
		];
		if (spec.week_day_slots || spec.year_day_slots) {
			list.push({
				ccId: CommandClasses["Schedule Entry Lock"],
				version: 3,
				numWeekDaySlots: spec.week_day_slots,
				numYearDaySlots: spec.year_day_slots,
				numDailyRepeatingSlots: 0,
			});
		}
		return list;
	}

	function fingerprint(spec) {
		if (spec.model === "yale") {
			// A real model: the device config database then describes it (slots included).
			return { manufacturerId: 0x0129, productType: 0x8002, productId: 0x0600 };
		}
		return {};
	}

	const nodes = specs.map((spec) => ({
		id: spec.id,
		capabilities: {
			...fingerprint(spec),
			isListening: true,
			genericDeviceClass: 0x40, // Entry Control
			specificDeviceClass: 0x03, // Secure Keypad Door Lock
			commandClasses: commandClasses(spec),
		},
		behaviors: lockBehaviors(spec),
	}));

	// Control side

	function accessControl(controller, event, userId) {
		return new cc.NotificationCCReport({
			nodeId: controller.ownNodeId,
			notificationType: ACCESS_CONTROL,
			notificationEvent: event,
			eventParameters: userId === undefined ? undefined : Uint8Array.from([userId]),
		});
	}

	function findSlot(node, spec, pin, except) {
		for (let id = 1; id <= spec.slots; id++) {
			if (id === except) continue;
			const status = node.state.get(USER.status(id));
			if (status === cc.UserIDStatus.Enabled || status === cc.UserIDStatus.Disabled) {
				if (String(node.state.get(USER.code(id))) === pin) return id;
			}
		}
		return undefined;
	}

	return {
		controller: { behaviors: [resplitHostData] },
		nodes,
		onInit(controller, mockNodes) {
			for (const [index, node] of mockNodes.entries()) {
				node.state.set(DOOR_MODE, cc.DoorLockMode.Secured);
				for (const [slot, pin] of Object.entries(specs[index].codes ?? {})) {
					node.state.set(USER.status(Number(slot)), cc.UserIDStatus.Enabled);
					node.state.set(USER.code(Number(slot)), pin);
				}
			}
			openControlChannel(
				{
					cc,
					specs,
					send,
					operationReport,
					accessControl,
					findSlot,
					keys: { USER, DOOR_MODE, OFFLINE, LOSE, FRAMES, HOME_SECURITY },
				},
				controller,
				mockNodes,
			);
		},
	};
};
