// zwave-js mock-server config: a mock controller and simulated door locks.
//
// The locks come from $LOCKBRIDGE_ZWAVE_LOCKS (JSON, written by simulators/zwave/stack.py).
// Behaviours added to zwave-js' own mocks: Battery, Notification Get, door/bolt status in
// Door Lock reports, optional multi-code User Code sets, masked code reads, offline nodes,
// and a loopback control channel (newline-delimited JSON) through which the harness plays
// the person at the door: keypad entries checked against the node's user codes, manual
// operation, door, battery, codes programmed at the lock, and the device's true slots.
"use strict";

const net = require("node:net");
const fs = require("node:fs");

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

	function schedulesOf(node, userId, spec) {
		const weekDay = [];
		const yearDay = [];
		for (let slotId = 1; slotId <= (spec.week_day_slots || 0); slotId++) {
			const entry = node.state.get(`ScheduleEntryLock_schedule_${userId}_${slotId}_0`);
			if (entry) weekDay.push(entry);
		}
		for (let slotId = 1; slotId <= (spec.year_day_slots || 0); slotId++) {
			const entry = node.state.get(`ScheduleEntryLock_schedule_${userId}_${slotId}_1`);
			if (entry) yearDay.push(entry);
		}
		return { week_day: weekDay, year_day: yearDay };
	}

	function trueSlots(node, spec) {
		const slots = [];
		for (let id = 1; id <= spec.slots; id++) {
			const status = node.state.get(USER.status(id));
			if (status !== cc.UserIDStatus.Enabled && status !== cc.UserIDStatus.Disabled) continue;
			const schedules = schedulesOf(node, id, spec);
			let userType = "unrestricted";
			if (schedules.year_day.length) userType = "year_day_schedule_user";
			else if (schedules.week_day.length) userType = "week_day_schedule_user";
			slots.push({
				slot: id,
				status: status === cc.UserIDStatus.Enabled ? "enabled" : "disabled",
				user_type: userType,
				code: String(node.state.get(USER.code(id))),
				schedules,
			});
		}
		return slots;
	}

	async function perform(controller, mockNodes, request) {
		if (request.action === "guard") {
			return { guard: globalThis.__lockbridgeLoopbackGuard ?? null };
		}
		const index = specs.findIndex((s) => s.id === request.node);
		const node = mockNodes.find((n) => n.id === request.node);
		if (index === -1 || !node) throw new Error(`no simulated node ${request.node}`);
		const spec = specs[index];
		const reportState = () => send(node, operationReport(controller, node));
		switch (request.action) {
			case "keypad": {
				const slot = findSlot(node, spec, request.pin);
				const enabled =
					slot !== undefined &&
					node.state.get(USER.status(slot)) === cc.UserIDStatus.Enabled;
				if (!enabled) {
					await send(node, accessControl(controller, 0x13));
					return { accepted: false };
				}
				node.state.set(DOOR_MODE, cc.DoorLockMode.Unsecured);
				await send(node, accessControl(controller, 0x06, slot));
				await reportState();
				return { accepted: true, slot };
			}
			case "manual": {
				node.state.set(
					DOOR_MODE,
					request.lock ? cc.DoorLockMode.Secured : cc.DoorLockMode.Unsecured,
				);
				await send(node, accessControl(controller, request.lock ? 0x01 : 0x02));
				await reportState();
				return {};
			}
			case "jam": {
				await send(node, accessControl(controller, 0x0b));
				return {};
			}
			case "tamper": {
				await send(
					node,
					new cc.NotificationCCReport({
						nodeId: controller.ownNodeId,
						notificationType: HOME_SECURITY,
						notificationEvent: 0x03,
					}),
				);
				return {};
			}
			case "door": {
				node.state.set("lockbridge_door", request.open ? "open" : "closed");
				await send(node, accessControl(controller, request.open ? 0x16 : 0x17));
				await reportState();
				return {};
			}
			case "battery": {
				node.state.set("lockbridge_battery", request.level);
				await send(
					node,
					new cc.BatteryCCReport({ nodeId: controller.ownNodeId, level: request.level }),
				);
				return {};
			}
			case "online": {
				node.state.set(OFFLINE, !request.online);
				node.autoAckControllerFrames = !!request.online;
				if (request.online) await reportState(); // a frame from a dead node revives it
				return {};
			}
			case "add_code": {
				if (request.slot < 1 || request.slot > spec.slots) {
					throw new Error(`slot ${request.slot}: the lock has no such slot`);
				}
				if (findSlot(node, spec, request.pin, request.slot) !== undefined) {
					await send(node, accessControl(controller, 0x0f, request.slot));
					throw new Error(`slot ${request.slot}: the lock already has this code`);
				}
				node.state.set(USER.status(request.slot), cc.UserIDStatus.Enabled);
				node.state.set(USER.code(request.slot), request.pin);
				await send(node, accessControl(controller, 0x0e, request.slot));
				return {};
			}
			case "lose": {
				node.state.set(LOSE, request.count);
				return {};
			}
			case "reset": {
				// A fresh lock for the next test: no codes or schedules, locked, door closed.
				for (const key of [...node.state.keys()]) {
					if (key.startsWith("UserCode_") || key.startsWith("ScheduleEntryLock_schedule_")) {
						node.state.delete(key);
					}
				}
				for (const [slot, pin] of Object.entries(spec.codes ?? {})) {
					node.state.set(USER.status(Number(slot)), cc.UserIDStatus.Enabled);
					node.state.set(USER.code(Number(slot)), pin);
				}
				node.state.set(DOOR_MODE, cc.DoorLockMode.Secured);
				node.state.set("lockbridge_door", "closed");
				node.state.set("lockbridge_battery", spec.battery ?? 90);
				node.state.set(OFFLINE, false);
				node.state.set(LOSE, 0);
				node.autoAckControllerFrames = true;
				await reportState();
				await send(node, new cc.BatteryCCReport({ nodeId: controller.ownNodeId, level: spec.battery ?? 90 }));
				return {};
			}
			case "slots":
				return { slots: trueSlots(node, spec) };
			case "frames":
				return { frames: node.state.get(FRAMES) ?? 0 };
			default:
				throw new Error(`unknown action ${request.action}`);
		}
	}

	function openControlChannel(controller, mockNodes) {
		const server = net.createServer((socket) => {
			let buffer = "";
			socket.setEncoding("utf8");
			socket.on("data", (chunk) => {
				buffer += chunk;
				let newline = buffer.indexOf("\n");
				while (newline !== -1) {
					const line = buffer.slice(0, newline);
					buffer = buffer.slice(newline + 1);
					newline = buffer.indexOf("\n");
					let request;
					try {
						request = JSON.parse(line);
					} catch {
						socket.write(`${JSON.stringify({ ok: false, error: "invalid JSON" })}\n`);
						continue;
					}
					perform(controller, mockNodes, request).then(
						(result) => socket.write(`${JSON.stringify({ id: request.id, ok: true, result })}\n`),
						(err) => socket.write(`${JSON.stringify({ id: request.id, ok: false, error: String(err.message ?? err) })}\n`),
					);
				}
			});
			socket.on("error", () => socket.destroy());
		});
		server.listen({ host: "127.0.0.1", port: 0 }, () => {
			const file = process.env.LOCKBRIDGE_ZWAVE_CONTROL_FILE;
			const { port } = server.address();
			if (file) fs.writeFileSync(file, String(port));
			console.log(`lockbridge control channel on tcp://127.0.0.1:${port}`);
		});
		server.unref();
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
			openControlChannel(controller, mockNodes);
		},
	};
};
