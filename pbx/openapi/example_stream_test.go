package openapi_test

import (
	"context"
	"fmt"

	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// ExampleClient_NewEventStream follows a click-to-call through the OpenAPI
// event socket: Dial starts it, the 30011 events show its members' states,
// Hangup ends it and 30012 brings its record.
func ExampleClient_NewEventStream() {
	sim, err := pbxtest.NewServer(pbxtest.Options{})
	if err != nil {
		panic(err)
	}
	defer sim.Close()
	sim.AddExtension(pbxtest.Extension{Number: "1001"})
	sim.AddExtension(pbxtest.Extension{Number: "1002"})
	id, key := sim.OpenAPICredentials()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	oa, err := openapi.New(openapi.Config{URL: sim.URL(), AccessID: id, AccessKey: key, RootCAs: sim.CertPool()})
	if err != nil {
		panic(err)
	}
	defer oa.Close(context.Background())

	events, up := make(chan *openapi.Event, 16), make(chan struct{}, 1)
	stream, err := oa.NewEventStream(openapi.EventStreamConfig{
		Topics:  []openapi.EventType{openapi.EventCallState, openapi.EventNewCDR},
		OnEvent: func(ev *openapi.Event) { events <- ev },
		OnState: func(st openapi.EventStreamState) {
			if st.Up {
				up <- struct{}{}
			}
		},
	})
	if err != nil {
		panic(err)
	}
	done := make(chan error)
	go func() { done <- stream.Run(ctx) }()
	<-up

	callID, err := oa.Dial(ctx, "1001", "1002", true)
	if err != nil {
		panic(err)
	}
	for ev := range events {
		switch d := ev.Data.(type) {
		case *openapi.CallState:
			fmt.Print(ev.Type)
			for _, m := range d.Members {
				fmt.Printf(" %s:%s", m.Number, m.Status)
			}
			fmt.Println()
			switch {
			case len(d.Members) == 2 && d.Members[1].Status == openapi.StatusRing:
				_ = sim.AnswerCall(callID) // the callee picks up
			case len(d.Members) == 2 && d.Members[1].Status == openapi.StatusAnswer:
				_ = oa.Hangup(ctx, d.Members[0].ChannelID)
			}
		case *openapi.NewCDR:
			fmt.Println(ev.Type, d.CallFrom, "->", d.CallTo, d.Status, d.CallID == callID)
			cancel()
			<-done
			return
		}
	}
	// Output:
	// 30011 1001:RING
	// 30011 1001:ALERT 1002:RING
	// 30011 1001:ANSWERED 1002:ANSWER
	// 30011 1001:BYE 1002:BYE
	// 30012 1001 -> 1002 ANSWERED true
}
